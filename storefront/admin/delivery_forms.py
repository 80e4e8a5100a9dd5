"""The delivery method form. Prices are typed in major units ("4.95") and read into minor units
here, at the edge; countries are typed as ISO codes ("IE, GB") and checked against real ones."""

from __future__ import annotations

from flask import current_app
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, StringField
from wtforms.validators import InputRequired, Length, NumberRange, ValidationError

from storefront.admin.catalogue_forms import _stripped
from storefront.checkout.forms import country_codes
from storefront.money import from_major

# Amounts are stored as 32-bit integers of minor units (on PostgreSQL too).
MAX_AMOUNT = 2**31 - 1


def _major(currency: str, text: str, what: str) -> int:
    try:
        minor = from_major(text, currency)
    except ValueError as exc:
        raise ValidationError(
            f"Type the {what} in {currency} as a plain number, such as 4.95."
        ) from exc
    if minor < 0:
        raise ValidationError(f"The {what} cannot be negative.")
    if minor > MAX_AMOUNT:
        raise ValidationError(f"The {what} is too large.")
    return minor


class DeliveryMethodForm(FlaskForm):
    name = StringField("Name", validators=[InputRequired(), Length(max=120)], filters=[_stripped])
    price = StringField("Price", validators=[InputRequired(), Length(max=24)], filters=[_stripped])
    free_over = StringField(
        "Free for a basket of at least", validators=[Length(max=24)], filters=[_stripped]
    )
    countries = StringField(
        "Countries served", validators=[InputRequired(), Length(max=1000)], filters=[_stripped]
    )
    active = BooleanField("Offered at checkout", default=True)
    position = IntegerField(
        "Position", default=0, validators=[InputRequired(), NumberRange(0, 10_000)]
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        currency = current_app.config["CURRENCY"]
        self.price.label.text = f"Price ({currency})"
        self.free_over.label.text = f"Free for a basket of at least ({currency})"
        self.minor: int | None = None
        self.free_minor: int | None = None
        self.country_list: str = ""

    def validate_price(self, field) -> None:
        self.minor = _major(current_app.config["CURRENCY"], field.data or "", "price")

    def validate_free_over(self, field) -> None:
        if field.data:
            self.free_minor = _major(current_app.config["CURRENCY"], field.data, "threshold")

    def validate_countries(self, field) -> None:
        codes = [c.strip().upper() for c in (field.data or "").replace(";", ",").split(",")]
        codes = [c for c in codes if c]
        if not codes:
            raise ValidationError("Give at least one country code, such as IE.")
        unknown = [c for c in codes if c not in country_codes()]
        if unknown:
            raise ValidationError(
                f"Not a country code: {', '.join(unknown)}. Use two-letter ISO codes, such as "
                "IE, GB, DE, separated by commas."
            )
        self.country_list = ",".join(dict.fromkeys(codes))
