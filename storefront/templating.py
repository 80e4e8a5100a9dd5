"""Jinja filters and globals: the one ``money`` filter, the shop's name, the cart's size."""

from __future__ import annotations

from babel import Locale
from flask import Flask, current_app, session

from storefront.money import format_money


def init_app(app: Flask) -> None:
    app.jinja_env.filters["money"] = money
    app.jinja_env.filters["country_name"] = country_name
    app.context_processor(_globals)


def money(amount: int, currency: str | None = None) -> str:
    """``{{ product.price|money }}`` or ``{{ order.total|money(order.currency) }}``."""
    return format_money(
        int(amount), currency or current_app.config["CURRENCY"], current_app.config["LOCALE"]
    )


def country_name(code: str) -> str:
    """``{{ order.country|country_name }}``: 'IE' -> 'Ireland'."""
    return Locale.parse(current_app.config["LOCALE"]).territories.get(code, code)


def cart_count() -> int:
    """How many items the visitor's cart holds, as stored in their session."""
    cart = session.get("cart") or {}
    return sum(q for q in cart.values() if isinstance(q, int)) if isinstance(cart, dict) else 0


def _globals() -> dict:
    count = cart_count()
    return {
        "shop_name": current_app.config["SHOP_NAME"],
        "shop_currency": current_app.config["CURRENCY"],
        "cart_count": count,
        "contact_email": current_app.config["CONTACT_EMAIL"] or current_app.config["MAIL_FROM"],
        # The sandbox gateway is mounted in this process (app.py): no payment is real.
        "test_mode": current_app.config["SANDBOX"],
    }
