"""The cart: a guest's ``{product_id: quantity}`` in the signed session cookie, nothing more.

Names, prices and stock are never stored in the session; they are read from the catalogue
every time the cart is read, so a cart can never carry a stale or forged price. What changed
since the customer last looked (a product withdrawn, stock sold, a new price) is reported as
notices. The last prices seen live next to the cart, in ``session["cart_prices"]``, only to
notice such a change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app, session
from flask_babel import gettext as _

from storefront.catalogue import queries
from storefront.catalogue.models import Product
from storefront.extensions import db
from storefront.i18n import formatting_locale
from storefront.money import format_money

MAX_QUANTITY = 99
# The cart lives in a cookie, which browsers cap at about 4 KB.
MAX_LINES = 50
MAX_PRODUCT_ID = 2**31 - 1

CART = "cart"
PRICES = "cart_prices"


class CartError(ValueError):
    """A change the cart cannot make; the message is written for the customer."""


@dataclass
class CartLine:
    product: Product | queries.ProductView
    quantity: int

    @property
    def total(self) -> int:
        """The line's total in minor units."""
        return self.product.price * self.quantity


@dataclass
class Cart:
    lines: list[CartLine] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    currency: str = "EUR"

    @property
    def total(self) -> int:
        return sum(line.total for line in self.lines)

    @property
    def count(self) -> int:
        return sum(line.quantity for line in self.lines)

    @property
    def is_empty(self) -> bool:
        return not self.lines


def read_cart(current: bool = False) -> Cart:
    """The cart as it stands now, with notices for whatever changed since it was last read.

    Its products are what the catalogue shows now (``queries.product_views``: as read at the
    catalogue's current version, mostly with no query); ``current=True`` reads them from the
    database as ORM instances instead, for placing the order. Then it drops products that are
    gone or withdrawn, clamps quantities to the stock and ``MAX_QUANTITY``, and writes the
    corrected cart back.
    """
    quantities = _stored()
    seen_prices = _stored_prices()
    cart = Cart(currency=current_app.config["CURRENCY"])
    if not quantities:
        _save({}, {})
        return cart
    if current:
        stmt = db.select(Product).where(Product.id.in_([int(key) for key in quantities]))
        products: dict[str, Any] = {str(p.id): p for p in db.session.execute(stmt).scalars()}
    else:
        shown = queries.product_views(int(key) for key in quantities)
        products = {str(key): view for key, view in shown.items()}
    kept: dict[str, int] = {}
    prices: dict[str, int] = {}
    for key, wanted in quantities.items():
        product = products.get(key)
        if product is None or not product.active:
            cart.notices.append(
                _(
                    "%(product)s is no longer available and was removed from your cart.",
                    product=product.name,
                )
                if product is not None
                else _("An item in your cart is no longer available and was removed from it.")
            )
            continue
        quantity = min(wanted, product.stock, MAX_QUANTITY)
        if quantity < 1:
            cart.notices.append(
                _("%(product)s is sold out and was removed from your cart.", product=product.name)
            )
            continue
        if quantity < wanted:
            cart.notices.append(clamped_notice(product, quantity))
        seen = seen_prices.get(key)
        if seen is not None and seen != product.price:
            cart.notices.append(
                _(
                    "The price of %(product)s changed from %(before)s to %(now)s.",
                    product=product.name,
                    before=_money(seen),
                    now=_money(product.price),
                )
            )
        kept[key] = quantity
        prices[key] = product.price
        cart.lines.append(CartLine(product, quantity))
    cart.lines.sort(key=lambda line: (line.product.name.lower(), line.product.id))
    _save(kept, prices)
    return cart


def quantity_of(product_id: int) -> int:
    """How many of the product the cart holds, as stored (not yet checked against stock)."""
    return _stored().get(str(product_id), 0)


def add(product_id: int, quantity: int) -> None:
    """Add up to ``quantity`` of a product: as many as the stock and ``MAX_QUANTITY`` allow.

    Compare :func:`quantity_of` before and after to learn how many were added.
    :raise CartError: the product is not for sale, or the cart has too many lines.
    """
    if quantity < 1:
        raise ValueError(f"quantity must be at least 1, not {quantity}")
    _put(product_id, quantity_of(product_id) + quantity)


def set_quantity(product_id: int, quantity: int) -> None:
    """Set a line's quantity, clamped to stock and ``MAX_QUANTITY``; 0 removes the line.

    :raise CartError: the product is not for sale.
    """
    if quantity < 0:
        raise ValueError(f"quantity must not be negative, not {quantity}")
    if quantity == 0:
        remove(product_id)
    else:
        _put(product_id, quantity)


def remove(product_id: int) -> None:
    """Take a product out of the cart; removing what is not there is not an error."""
    quantities, prices = _stored(), _stored_prices()
    quantities.pop(str(product_id), None)
    prices.pop(str(product_id), None)
    _save(quantities, prices)


def clear() -> None:
    session.pop(CART, None)
    session.pop(PRICES, None)


def restore(lines: list[tuple[int, int]]) -> None:
    """Put an order's lines back in the cart (after a failed payment), merged with what is there:
    each product at least as many as the order holds.

    Stock is not checked here: :func:`read_cart` clamps and reports when the cart is next read.
    """
    quantities = _stored()
    for product_id, quantity in lines:
        if quantity < 1:
            continue
        key = str(int(product_id))
        if key not in quantities and len(quantities) >= MAX_LINES:
            continue
        # At least the order's quantity, not added on top: a second failed attempt of the same
        # order restores the same lines, and must not double them.
        quantities[key] = min(max(quantities.get(key, 0), quantity), MAX_QUANTITY)
    _save(quantities, _stored_prices())


def take_back(lines: list[tuple[int, int]]) -> None:
    """Take an order's lines out of the cart again (the order was paid after all): as many of
    each as the order holds, leaving whatever the customer added on top."""
    quantities, prices = _stored(), _stored_prices()
    for product_id, quantity in lines:
        key = str(int(product_id))
        left = quantities.get(key, 0) - quantity
        if left > 0:
            quantities[key] = left
        else:
            quantities.pop(key, None)
    _save(quantities, prices)


def _put(product_id: int, quantity: int) -> None:
    product = db.session.get(Product, product_id)
    if product is None or not product.active:
        raise CartError(_("Sorry, that product is no longer available."))
    quantities, prices = _stored(), _stored_prices()
    key = str(product.id)
    if key not in quantities and len(quantities) >= MAX_LINES:
        raise CartError(
            _("Your cart can hold %(count)d different products at most.", count=MAX_LINES)
        )
    allowed = min(quantity, product.stock, MAX_QUANTITY)
    if allowed < 1:
        quantities.pop(key, None)
        prices.pop(key, None)
    else:
        quantities[key] = allowed
        # The customer is looking at today's price now: a later change is news, this one is not.
        prices[key] = product.price
    _save(quantities, prices)


def clamped_notice(product: Product, quantity: int) -> str:
    """What to tell the customer when the cart holds fewer than asked for."""
    if quantity == MAX_QUANTITY and product.stock > MAX_QUANTITY:
        return _(
            "You can order at most %(most)d of %(product)s: your cart now has %(quantity)d.",
            most=MAX_QUANTITY,
            product=product.name,
            quantity=quantity,
        )
    return _(
        "Only %(stock)d of %(product)s left: your cart now has %(quantity)d.",
        stock=product.stock,
        product=product.name,
        quantity=quantity,
    )


def _money(amount: int) -> str:
    return format_money(amount, current_app.config["CURRENCY"], formatting_locale())


def _stored() -> dict[str, int]:
    # The cookie is signed, but an old or hand-made one must still never break the cart page.
    raw = session.get(CART)
    if not isinstance(raw, dict):
        return {}
    return {
        key: value for key, value in raw.items() if _is_id(key) and type(value) is int and value > 0
    }


def _stored_prices() -> dict[str, int]:
    raw = session.get(PRICES)
    if not isinstance(raw, dict):
        return {}
    return {key: value for key, value in raw.items() if _is_id(key) and type(value) is int}


def _is_id(key: object) -> bool:
    # Within a 32-bit INTEGER: PostgreSQL rejects a larger literal in the IN (...) list.
    return (
        isinstance(key, str)
        and key.isascii()
        and key.isdigit()
        and len(key) <= 10
        and 0 < int(key) <= MAX_PRODUCT_ID
    )


def _save(quantities: dict[str, int], prices: dict[str, int]) -> None:
    # Writing only what changed keeps a cookie from being re-sent with every page.
    prices = {key: price for key, price in prices.items() if key in quantities}
    for name, value in ((CART, quantities), (PRICES, prices)):
        if not value:
            if name in session:
                session.pop(name)
        elif session.get(name) != value:
            session[name] = value
