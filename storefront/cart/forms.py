"""Cart forms. Only the product and the quantity are read: prices always come from the catalogue."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import IntegerField
from wtforms.validators import InputRequired, NumberRange
from wtforms.widgets import HiddenInput, NumberInput

from storefront.cart.service import MAX_PRODUCT_ID, MAX_QUANTITY


def _product_id() -> IntegerField:
    return IntegerField(
        _l("Product"),
        widget=HiddenInput(),
        validators=[
            InputRequired(_l("Choose a product.")),
            NumberRange(1, MAX_PRODUCT_ID, _l("That product is not in our catalogue.")),
        ],
    )


def _quantity(minimum: int) -> IntegerField:
    # Lazy: the forms are built once, the message is read in each customer's language.
    message = _l(
        "Choose a quantity from %(minimum)d to %(maximum)d.", minimum=minimum, maximum=MAX_QUANTITY
    )
    return IntegerField(
        _l("Quantity"),
        widget=NumberInput(min=minimum, max=MAX_QUANTITY, step=1),
        validators=[InputRequired(message), NumberRange(minimum, MAX_QUANTITY, message)],
    )


class AddToCartForm(FlaskForm):
    product_id = _product_id()
    quantity = _quantity(1)


class UpdateCartForm(FlaskForm):
    """Set a line's quantity; 0 removes the line."""

    product_id = _product_id()
    quantity = _quantity(0)


class RemoveFromCartForm(FlaskForm):
    product_id = _product_id()
