"""Checkout forms. Only what the customer types is read: prices come from the catalogue."""

from __future__ import annotations

import unicodedata

from babel import Locale
from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, RadioField, SelectField, StringField
from wtforms.validators import Email, InputRequired, Length, Regexp, ValidationError


def country_choices() -> list[tuple[str, str]]:
    names = Locale.parse("en").territories
    # Two-letter codes are countries; numeric ones are regions such as "Europe".
    return sorted(
        ((code, name) for code, name in names.items() if code.isalpha()), key=lambda pair: pair[1]
    )


def printable(form, field) -> None:
    """No control characters: nobody types one in an address, and PostgreSQL refuses NUL."""
    if any(unicodedata.category(c) == "Cc" for c in field.data or ""):
        raise ValidationError("Please remove the tabs, line breaks or other control characters.")


class DetailsForm(FlaskForm):
    email = EmailField("Email", validators=[InputRequired(), Email(), Length(max=254)])
    name = StringField("Full name", validators=[InputRequired(), Length(max=200), printable])
    address = StringField(
        "Street address", validators=[InputRequired(), Length(max=300), printable]
    )
    city = StringField("City", validators=[InputRequired(), Length(max=120), printable])
    postcode = StringField("Postcode", validators=[InputRequired(), Length(max=20), printable])
    country = SelectField("Country", validators=[InputRequired()])
    gateway = RadioField("Pay with", validators=[InputRequired()])


class PlaceOrderForm(FlaskForm):
    """The review page's button. The key makes a second submission find the first order."""

    checkout_key = HiddenField(validators=[InputRequired(), Regexp(r"^[A-Za-z0-9_-]{16,64}$")])
