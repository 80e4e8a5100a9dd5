"""Checkout forms. Only what the customer types is read: prices come from the catalogue."""

from __future__ import annotations

import unicodedata
from functools import cache

from babel import Locale
from babel.core import get_global
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, RadioField, SelectField, StringField
from wtforms.validators import Email, InputRequired, Length, Optional, Regexp, ValidationError

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


class DetailsForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[InputRequired(), Email(), Length(max=254)])
    name = StringField(_l("Full name"), validators=[InputRequired(), Length(max=200), printable])
    address = StringField(
        _l("Street address"), validators=[InputRequired(), Length(max=300), printable]
    )
    city = StringField(_l("City"), validators=[InputRequired(), Length(max=120), printable])
    postcode = StringField(_l("Postcode"), validators=[InputRequired(), Length(max=20), printable])
    country = SelectField(_l("Country"), validators=[InputRequired()])
    gateway = RadioField(
        _l("Pay with"),
        validators=[InputRequired(message=_l("Please choose how you want to pay."))],
    )
    terms = BooleanField(
        _l("I accept the terms and conditions"),
        validators=[InputRequired(message=_l("Please accept the terms and conditions to order."))],
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
