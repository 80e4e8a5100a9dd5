"""Checkout forms. Only what the customer types is read: prices come from the catalogue."""

from __future__ import annotations

import re
import unicodedata
from functools import cache

from babel import Locale
from babel.core import get_global
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    RadioField,
    SelectField,
    StringField,
    TelField,
    TextAreaField,
)
from wtforms.validators import (
    Email,
    InputRequired,
    Length,
    Optional,
    Regexp,
    StopValidation,
    ValidationError,
)

from storefront.i18n import formatting_locale

# Two-letter codes in CLDR's territory names that are no country an address can be in: the
# aggregates (EU, EZ, UN, QO), the unknown region, the pseudo-locales' test regions, and the
# codes ISO 3166-1 only reserves (Ascension, Clipperton, Diego Garcia, Ceuta and Melilla,
# the Canaries, Sark, Tristan da Cunha), which gateways and carriers do not take.
NOT_COUNTRIES = frozenset(
    {"EU", "EZ", "UN", "QO", "ZZ", "XA", "XB", "AC", "CP", "DG", "EA", "IC", "CQ", "TA"}
)


@cache
def _countries(locale: str) -> tuple[tuple[str, str], ...]:
    names = Locale.parse(locale).territories
    currencies = get_global("territory_currencies")
    # Numeric codes are regions such as "Europe" (150); a country has a currency of its own.
    return tuple(
        sorted(
            (
                (code, name)
                for code, name in names.items()
                if len(code) == 2
                and code.isalpha()
                and code not in NOT_COUNTRIES
                and code in currencies
            ),
            key=lambda pair: pair[1],
        )
    )


def country_choices() -> list[tuple[str, str]]:
    """The countries an address can be in, by name in the customer's language."""
    return list(_countries(formatting_locale()))


def country_codes() -> frozenset[str]:
    """The two-letter codes of the countries an address can be in."""
    return frozenset(code for code, _name in _countries("en"))


def shop_country() -> str:
    """The country the shop is in (its VAT rates are that country's): the form's default."""
    return current_app.config["SHOP_COUNTRY"]


def printable(form, field) -> None:
    """No control characters: nobody types one in an address, and PostgreSQL refuses NUL."""
    if any(unicodedata.category(c) == "Cc" for c in field.data or ""):
        raise ValidationError(_("Please remove the tabs, line breaks or other control characters."))


def plain_text(form, field) -> None:
    """Line breaks and tabs are welcome in a note; other control characters are not."""
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in field.data or ""):
        raise ValidationError(_("Please remove the control characters from the note."))


def note_text(text: str | None) -> str | None:
    """The note as stored and counted: trimmed, with the browser's CRLF line breaks as LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip() if text else text


# A phone number as people type it: digits, spaces, "+", "-" and brackets, 6 to 20 digits.
# Checked loosely on purpose: it is for the courier, and stored as typed.
PHONE = re.compile(r"[0-9 +()-]+")


def phone_number(form, field) -> None:
    text = (field.data or "").strip()
    digits = sum(c.isdigit() for c in text)
    if not PHONE.fullmatch(text) or not 6 <= digits <= 20:
        raise ValidationError(
            _("Please enter a phone number of 6 to 20 digits (spaces, +, - and brackets are fine).")
        )


def billing(form, field) -> None:
    """The billing fields count only when the billing address differs from the delivery one.
    Without JavaScript they are always in the page, so with the box ticked whatever they hold
    is ignored; unticked, each is required."""
    if not form.billing_differs():
        raise StopValidation()
    if not field.raw_data or not field.raw_data[0].strip():
        raise StopValidation(
            _("Please fill this in, or tick “Billing address is the same as delivery”.")
        )


def a_country(form, field) -> None:
    if field.data not in dict(field.choices or ()):
        raise ValidationError(_("Please choose a country from the list."))


class DetailsForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[InputRequired(), Email(), Length(max=254)])
    name = StringField(_l("Full name"), validators=[InputRequired(), Length(max=200), printable])
    address = StringField(
        _l("Street address"), validators=[InputRequired(), Length(max=300), printable]
    )
    city = StringField(_l("City"), validators=[InputRequired(), Length(max=120), printable])
    postcode = StringField(_l("Postcode"), validators=[InputRequired(), Length(max=20), printable])
    country = SelectField(_l("Country"), validators=[InputRequired()])
    phone = TelField(
        _l("Phone (optional)"),
        filters=[lambda text: text.strip() if text else text],
        validators=[Optional(), Length(max=40), phone_number],
    )
    billing_same = BooleanField(_l("Billing address is the same as delivery"), default=True)
    billing_name = StringField(_l("Billing name"), validators=[billing, Length(max=200), printable])
    billing_address = StringField(
        _l("Billing street address"), validators=[billing, Length(max=300), printable]
    )
    billing_city = StringField(_l("Billing city"), validators=[billing, Length(max=120), printable])
    billing_postcode = StringField(
        _l("Billing postcode"), validators=[billing, Length(max=20), printable]
    )
    # Checked by ``a_country`` only when it counts: ignored, it may hold anything.
    billing_country = SelectField(
        _l("Billing country"), validate_choice=False, validators=[billing, a_country]
    )
    note = TextAreaField(
        _l("Note to the shop (optional)"),
        filters=[note_text],
        validators=[
            Optional(),
            Length(
                max=500,
                message=_l(
                    "Please shorten the note to %(max)d characters at most (it has %(length)d)."
                ),
            ),
            plain_text,
        ],
    )
    gateway = RadioField(
        _l("Pay with"),
        validators=[InputRequired(message=_l("Please choose how you want to pay."))],
    )
    terms = BooleanField(
        _l("I accept the terms and conditions"),
        validators=[InputRequired(message=_l("Please accept the terms and conditions to order."))],
    )

    def billing_differs(self) -> bool:
        """Whether the customer gave a billing address of its own: the box unticked. The page
        always holds the billing fields, so a browser sends them, empty or not; a submission
        with none of them in it gave no billing address, and the delivery address is it."""
        return not self.billing_same.data and any(self[name].raw_data for name in BILLING_FIELDS)


BILLING_FIELDS = (
    "billing_name",
    "billing_address",
    "billing_city",
    "billing_postcode",
    "billing_country",
)


class DeliveryForm(FlaskForm):
    """The choice of delivery method, among those serving the customer's country."""

    method = RadioField(
        _l("Delivery"),
        coerce=int,
        validators=[InputRequired(message=_l("Please choose how you want your order delivered."))],
    )


class PlaceOrderForm(FlaskForm):
    """The review page's button. The key makes a second submission find the first order; the
    delivery price is the one the review showed, compared with the price at placing."""

    checkout_key = HiddenField(validators=[InputRequired(), Regexp(r"^[A-Za-z0-9_-]{16,64}$")])
    delivery_price = HiddenField(validators=[Optional(), Regexp(r"^[0-9]{1,12}$")])
