"""Money: minor units to each gateway's format and to what the customer reads, and back."""

from __future__ import annotations

import pytest

from storefront.money import (
    UnsupportedCurrency,
    currency_info,
    format_money,
    from_major,
    to_major,
    to_two_decimals,
)


@pytest.mark.parametrize(
    ("code", "numeric", "exponent"),
    [("EUR", "978", 2), ("JPY", "392", 0), ("KWD", "414", 3)],
)
def test_currency_info_knows_each_currency_by_letters_or_number(code, numeric, exponent):
    assert currency_info(code) == currency_info(numeric)
    assert currency_info(code.lower()).exponent == exponent
    assert currency_info(code).numeric == numeric


@pytest.mark.parametrize("code", ["XXX", "", "EURO", "999", "€"])
def test_currency_info_refuses_unknown_currencies(code):
    with pytest.raises(UnsupportedCurrency):
        currency_info(code)


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (1250, "EUR", "12.50"),
        (5, "EUR", "0.05"),
        (-1250, "EUR", "-12.50"),
        (1250, "JPY", "1250"),
        (1250, "KWD", "1.250"),
        (7, "KWD", "0.007"),
    ],
)
def test_to_major_writes_exactly_the_currency_digits(amount, currency, expected):
    assert to_major(amount, currency) == expected


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [(1250, "EUR", "12.50"), (500, "JPY", "500.00"), (1250, "KWD", "1.25"), (0, "EUR", "0.00")],
)
def test_to_two_decimals_writes_major_units_with_two_decimals(amount, currency, expected):
    assert to_two_decimals(amount, currency) == expected


def test_to_two_decimals_refuses_an_amount_it_would_round():
    with pytest.raises(ValueError, match="two decimals"):
        to_two_decimals(1255, "KWD")


@pytest.mark.parametrize(
    ("text", "currency", "expected"),
    [
        ("12.50", "EUR", 1250),
        ("12.5", "EUR", 1250),
        ("12", "EUR", 1200),
        (" 0.01 ", "EUR", 1),
        ("500", "JPY", 500),
        ("500.00", "JPY", 500),
        ("1.250", "KWD", 1250),
        ("1.25", "KWD", 1250),
        ("-3.00", "EUR", -300),
    ],
)
def test_from_major_reads_a_gateway_amount_into_minor_units(text, currency, expected):
    assert from_major(text, currency) == expected


@pytest.mark.parametrize(
    ("text", "currency"),
    [("12.505", "EUR"), ("500.5", "JPY"), ("1.2505", "KWD"), ("0.001", "EUR")],
)
def test_from_major_refuses_more_decimals_than_the_currency_has(text, currency):
    with pytest.raises(ValueError, match="decimals"):
        from_major(text, currency)


@pytest.mark.parametrize(
    "text", ["", " ", "abc", "12,50", "1e3", "+1", ".5", "1.", "NaN", "Infinity", "12.50 EUR"]
)
def test_from_major_refuses_junk(text):
    with pytest.raises(ValueError, match="not a decimal"):
        from_major(text, "EUR")


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (1250, "EUR", "€12.50"),
        (123456789, "EUR", "€1,234,567.89"),
        (0, "EUR", "€0.00"),
        (-1250, "EUR", "-€12.50"),
        (1250, "JPY", "JP¥1,250"),
        (1250, "KWD", "KWD1.250"),
    ],
)
def test_format_money_shows_symbol_separators_and_the_iso_digits(amount, currency, expected):
    assert format_money(amount, currency, "en_IE") == expected


def test_format_money_follows_the_locale():
    assert format_money(1250, "EUR", "de_DE") == "12,50\xa0€"


def test_money_filter_uses_the_shop_currency_unless_told(app):
    with app.test_request_context():
        template = app.jinja_env.from_string("{{ 1250|money }} {{ 1250|money('JPY') }}")
        assert template.render() == "€12.50 JP¥1,250"
