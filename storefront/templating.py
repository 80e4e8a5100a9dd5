"""Jinja filters and globals: the one ``money`` filter, the shop's name, the cart's size.

Prices, dates and country names are written for the customer's language
(:func:`storefront.i18n.formatting_locale`), prices always in the shop's one currency.
"""

from __future__ import annotations

from datetime import UTC, datetime

from babel import Locale
from babel.dates import format_date, format_time
from flask import Flask, current_app, session

from storefront.i18n import formatting_locale
from storefront.money import format_money
from storefront.orders import totals


def init_app(app: Flask) -> None:
    app.jinja_env.filters["money"] = money
    app.jinja_env.filters["country_name"] = country_name
    app.jinja_env.filters["datetime_utc"] = datetime_utc
    app.jinja_env.filters["order_totals"] = totals.of_order
    app.context_processor(_globals)


def money(amount: int, currency: str | None = None) -> str:
    """``{{ product.price|money }}`` or ``{{ order.total|money(order.currency) }}``."""
    return format_money(
        int(amount), currency or current_app.config["CURRENCY"], formatting_locale()
    )


def country_name(code: str) -> str:
    """``{{ order.country|country_name }}``: 'IE' -> 'Ireland' (in German, 'Irland')."""
    return Locale.parse(formatting_locale()).territories.get(code, code)


def datetime_utc(moment: datetime) -> str:
    """``{{ order.created_at|datetime_utc }}``: '2 Dec 2026, 13:45 UTC' in the customer's
    language. The shop keeps UTC (naive values are UTC) and says so rather than guess a zone."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    locale = Locale.parse(formatting_locale())
    # The medium date with the short time (no seconds), joined as the language joins them.
    joined = str(locale.datetime_formats["medium"]).format(
        format_time(aware, "short", tzinfo=UTC, locale=locale),
        format_date(aware, "medium", locale=locale),
    )
    return joined + " UTC"


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
