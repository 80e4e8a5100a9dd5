"""Cart pages: show the cart, and add, update or remove a line (each a POST with a CSRF token).

Invalid input leaves the cart as it was: a junk product id is a 400 page; a quantity out of
range sends the customer back with a message saying what is allowed.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from storefront.cart import service
from storefront.cart.forms import AddToCartForm, RemoveFromCartForm, UpdateCartForm
from storefront.catalogue.models import Product
from storefront.extensions import db

bp = Blueprint("cart", __name__, url_prefix="/cart")


@bp.app_template_global()
def add_to_cart_form(product: Product) -> AddToCartForm | None:
    """The product page's form, posted to ``cart.add``; None when it is out of stock."""
    if not product.stock:
        return None
    return AddToCartForm(formdata=None, product_id=product.id, quantity=1)


@bp.app_template_global()
def max_quantity_of(product: Product) -> int:
    return min(product.stock, service.MAX_QUANTITY)


@bp.get("/")
def show():
    """The cart: its lines, what changed since last time, the total and the way to checkout."""
    cart = service.read_cart()
    return render_template(
        "cart/cart.html",
        cart=cart,
        max_quantity=service.MAX_QUANTITY,
    )


@bp.post("/add")
def add() -> Response:
    """Add a product to the cart, as many as are in stock.

    :raise 400: bad CSRF token, or no such product.
    """
    form = AddToCartForm()
    product = _product_or_400(form)
    if not form.validate():
        flash(_quantity_error(form), "error")
        return _back_to(product)
    before = service.quantity_of(product.id)
    try:
        service.add(product.id, int(form.quantity.data or 0))  # validated: never None
    except service.CartError as error:
        flash(str(error), "error")
        return _back_to(product)
    added = service.quantity_of(product.id) - before
    if added == form.quantity.data:
        flash(
            _(
                "Added %(quantity)d × %(product)s to your cart.",
                quantity=added,
                product=product.name,
            )
        )
    elif added > 0:
        flash(service.clamped_notice(product, before + added))
    elif product.stock == 0:
        flash(_("Sorry, %(product)s is out of stock.", product=product.name), "error")
        return _back_to(product)
    else:
        flash(
            _("Your cart already has all the %(product)s we can sell you.", product=product.name),
            "error",
        )
    return redirect(url_for("cart.show"), 303)


@bp.post("/update")
def update() -> Response:
    """Set a line's quantity (0 removes it).

    :raise 400: bad CSRF token, or no such product.
    """
    form = UpdateCartForm()
    product = _product_or_400(form)
    if not form.validate():
        flash(f"{product.name}: {_quantity_error(form)}", "error")
        return redirect(url_for("cart.show"), 303)
    wanted = int(form.quantity.data or 0)  # validated: never None
    try:
        service.set_quantity(product.id, wanted)
    except service.CartError as error:
        flash(str(error), "error")
        return redirect(url_for("cart.show"), 303)
    now = service.quantity_of(product.id)
    if wanted == 0:
        flash(_("%(product)s was removed from your cart.", product=product.name))
    elif now < wanted:
        flash(service.clamped_notice(product, now), "error")
    else:
        flash(
            _("Your cart now has %(quantity)d × %(product)s.", quantity=now, product=product.name)
        )
    return redirect(url_for("cart.show"), 303)


@bp.post("/remove")
def remove() -> Response:
    """Take a product out of the cart.

    :raise 400: bad CSRF token, or a product id that is not a number.
    """
    form = RemoveFromCartForm()
    if not form.validate():
        abort(400, _("That product is not in our catalogue."))
    product_id = int(form.product_id.data or 0)  # validated: never None
    service.remove(product_id)
    product = db.session.get(Product, product_id)
    flash(
        _("%(product)s was removed from your cart.", product=product.name)
        if product
        else _("The item was removed from your cart.")
    )
    return redirect(url_for("cart.show"), 303)


def _product_or_400(form: AddToCartForm | UpdateCartForm) -> Product:
    """The active product the form names. :raise 400: missing, junk or not for sale."""
    form.product_id.validate(form)
    product = None
    if not form.product_id.errors:
        product = db.session.get(Product, form.product_id.data)
    if product is None or not product.active:
        abort(400, _("That product is not in our catalogue. Nothing was changed."))
    return product


def _quantity_error(form: AddToCartForm | UpdateCartForm) -> str:
    # The last message is ours ("Choose a quantity from 1 to 99."); WTForms' own comes first.
    errors = form.quantity.errors or [_("Please check the quantity and try again.")]
    return str(errors[-1])  # a lazy message would not go into the session as a flash


def _back_to(product: Product) -> Response:
    return redirect(url_for("catalogue.product", slug=product.slug), 303)
