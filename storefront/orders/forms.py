"""Forms of the customer's order pages."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, RadioField, StringField
from wtforms.validators import InputRequired, Length


class PayForm(FlaskForm):
    """'Try again' on a failure page: a new attempt for the same order."""

    gateway = RadioField(_l("Pay with"), validators=[InputRequired()])


class PayNowForm(PayForm):
    """ "Pay now" from the link in a payment-failed mail; ``token`` is the link's signature."""

    token = HiddenField(validators=[InputRequired(), Length(max=200)])


class LookupForm(FlaskForm):
    """ "Did my payment go through?" — a guest finds an order by its number and email."""

    number = StringField(_l("Order number"), validators=[InputRequired(), Length(max=40)])
    email = EmailField(_l("Email"), validators=[InputRequired(), Length(max=254)])
