"""Forms of the operator's pages. Every state change is a POST carrying a CSRF token."""

from __future__ import annotations

from typing import TypeVar

from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    HiddenField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    Optional,
    Regexp,
    ValidationError,
)

from storefront.admin.models import MAX_NOTE_LENGTH, MAX_PASSWORD_LENGTH, MAX_REASON
from storefront.money import from_major, to_major
from storefront.orders.models import OrderState
from storefront.templating import money

T = TypeVar("T")


def required(data: T | None) -> T:
    """What a form that validated holds for a field it requires (or for a value its check sets,
    such as ``minor``): never None."""
    if data is None:
        raise ValueError("a required value is missing: the form has not validated")
    return data


class SignInForm(FlaskForm):
    # Not an EmailField validator: the account decides, and a typo gets the usual answer.
    email = StringField("Email", validators=[InputRequired(), Length(max=254)])
    password = PasswordField(
        "Password", validators=[InputRequired(), Length(max=MAX_PASSWORD_LENGTH)]
    )
    next = HiddenField()


class EmptyForm(FlaskForm):
    """A button-only POST (void, check now, sign out): nothing to fill in but the CSRF token."""


class NoteForm(FlaskForm):
    """An internal note on an order, for the staff only."""

    text = TextAreaField(
        "Internal note (staff only, never shown to the customer)",
        validators=[
            DataRequired("Write the note before adding it."),
            Length(
                max=MAX_NOTE_LENGTH,
                message=f"A note is at most {MAX_NOTE_LENGTH:,} characters long: shorten it.",
            ),
        ],
        filters=[lambda text: text.strip() if text else text],
    )


class ResendForm(FlaskForm):
    """Send the order's confirmation again. ``sent`` is how many resends the page showed: a
    double click or a second operator posts the same number, and only the first is queued."""

    sent = HiddenField(validators=[InputRequired()])


class CancelForm(FlaskForm):
    """Cancel an unpaid or held order by hand, saying why (kept in its history and the audit)."""

    reason = TextAreaField(
        "Why is the order cancelled? (kept in the order's history)",
        validators=[
            DataRequired("Say why the order is cancelled."),
            Length(max=MAX_REASON, message=f"At most {MAX_REASON} characters: shorten it."),
        ],
        filters=[lambda text: text.strip() if text else text],
    )


class LineRefundForm(FlaskForm):
    """Refund by line: the reason, and how many refunds the page showed (``seen``: a second
    post of the same page finds one more and refunds nothing). The lines' quantities and
    restock boxes are read by the view, one pair per line of the order."""

    reason = TextAreaField(
        "Why is it refunded? (kept in the order's history)",
        validators=[
            DataRequired("Say why these lines are refunded."),
            Length(max=MAX_REASON, message=f"At most {MAX_REASON} characters: shorten it."),
        ],
        filters=[lambda text: text.strip() if text else text],
    )
    seen = HiddenField(validators=[InputRequired(), Regexp(r"^\d{1,9}$")])


class AmountForm(FlaskForm):
    """An amount in major units ("12.50") for a capture or a refund, read into minor units.

    ``maximum`` (minor units) is what may still be captured or refunded; the back office checks
    again under its claim, so this check only gives the operator a clear message early.
    """

    amount = StringField("Amount", validators=[InputRequired(), Length(max=24)])

    LIMITS = {
        "capture": "Capturing more than is held is impossible: at most {} can still be captured.",
        "refund": "Refunding more than was captured is impossible: at most {} can be refunded.",
        "capture more": (
            "Capturing more than is still held is impossible: at most {} can still be captured."
        ),
    }

    def __init__(self, action: str, currency: str, maximum: int, **kwargs):
        super().__init__(**kwargs)
        self.action = action
        self.currency = currency
        self.maximum = maximum
        self.minor: int | None = None
        self.amount.label.text = f"Amount to {action} ({currency})"

    def validate_amount(self, field) -> None:
        try:
            minor = from_major(field.data, self.currency)
        except ValueError as exc:
            example = to_major(self.maximum, self.currency)
            raise ValidationError(
                f"Type the amount in {self.currency} as a plain number, such as {example}."
            ) from exc
        if minor <= 0:
            raise ValidationError("The amount must be more than zero.")
        if minor > self.maximum:
            raise ValidationError(
                self.LIMITS[self.action].format(money(self.maximum, self.currency))
            )
        self.minor = minor


class CaptureMoreForm(AmountForm):
    """A further capture of what a partial capture left held. ``seen`` is the amount captured
    as the page showed it: a second click of the same page finds more captured and takes
    nothing, where a plain amount would be captured twice."""

    seen = HiddenField(validators=[InputRequired(), Regexp(r"^\d{1,12}$")])

    def __init__(self, currency: str, maximum: int, **kwargs):
        super().__init__("capture more", currency, maximum, **kwargs)


def _state_choices() -> list[tuple[str, str]]:
    return [("", "Any state")] + [(s.value, s.value.replace("_", " ")) for s in OrderState]


def _printable(text: str | None) -> str | None:
    # PostgreSQL refuses NUL in a string, and no order number or email holds control characters.
    return "".join(c for c in text if c.isprintable()).strip() if text else text


class OrderFilterForm(FlaskForm):
    """The orders list's filters: a GET form, so its URLs can be bookmarked and shared."""

    class Meta:
        csrf = False  # a search changes nothing

    q = StringField(
        "Order number or email",
        validators=[Optional(), Length(max=254)],
        filters=[_printable],
    )
    state = SelectField("Order state", choices=_state_choices, validators=[Optional()])
    gateway = SelectField("Gateway", validators=[Optional()])
    date_from = DateField("Placed from", validators=[Optional()])
    date_to = DateField("Placed to", validators=[Optional()])

    def validate_date_to(self, field) -> None:
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("The 'to' date is before the 'from' date.")
