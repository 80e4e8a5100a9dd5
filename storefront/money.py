"""Money: integer minor units plus an ISO 4217 currency, everywhere inside the shop.

Conversions happen only at the edges: each gateway's wire format (minor units for BPC/RBS,
decimal major units for AltaPay and InterPay) and the customer's display (the ``money`` filter).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from decimal import Decimal

from babel import Locale
from babel.numbers import NumberPattern, parse_pattern


class UnsupportedCurrency(ValueError):
    """A currency the shop has no ISO 4217 data for."""


@dataclass(frozen=True)
class CurrencyInfo:
    code: str  # ISO 4217 alphabetic, e.g. "EUR"
    numeric: str  # ISO 4217 numeric, three digits, e.g. "978"
    exponent: int  # minor unit digits: 2 for EUR, 0 for JPY, 3 for KWD


# ISO 4217: alphabetic code, numeric code, minor unit exponent.
_ISO_4217 = """
AED 784 2  AMD 051 2  AUD 036 2  BGN 975 2  BHD 048 3  BRL 986 2  BYN 933 2  BZD 084 2
CAD 124 2  CHF 756 2  CLP 152 0  CNY 156 2  CZK 203 2  DKK 208 2  DZD 012 2  EUR 978 2
GBP 826 2  GEL 981 2  HKD 344 2  HUF 348 2  IDR 360 2  ILS 376 2  INR 356 2  IQD 368 3
ISK 352 0  JOD 400 3  JPY 392 0  KGS 417 2  KRW 410 0  KWD 414 3  KZT 398 2  LYD 434 3
MXN 484 2  MYR 458 2  NOK 578 2  NZD 554 2  OMR 512 3  PLN 985 2  RON 946 2  RSD 941 2
RUB 643 2  SAR 682 2  SEK 752 2  SGD 702 2  THB 764 2  TND 788 3  TRY 949 2  UAH 980 2
USD 840 2  UZS 860 2  VND 704 0  ZAR 710 2
"""
_BY_CODE = {
    code: CurrencyInfo(code, numeric, int(exponent))
    for code, numeric, exponent in re.findall(r"([A-Z]{3}) (\d{3}) (\d)", _ISO_4217)
}
_BY_NUMERIC = {info.numeric: info for info in _BY_CODE.values()}


def currency_info(code: str) -> CurrencyInfo:
    """Look up a currency by its alphabetic or numeric ISO 4217 code."""
    key = str(code).strip().upper()
    info = _BY_CODE.get(key) or _BY_NUMERIC.get(key.zfill(3) if key.isdigit() else key)
    if info is None:
        raise UnsupportedCurrency(f"unknown or unsupported ISO 4217 currency {code!r}")
    return info


def to_major(amount: int, currency: str) -> str:
    """Minor units to a decimal string with exactly the currency's digits: 1250 EUR -> '12.50'."""
    exponent = currency_info(currency).exponent
    if exponent == 0:
        return str(amount)
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**exponent)
    return f"{sign}{whole}.{fraction:0{exponent}d}"


def to_two_decimals(amount: int, currency: str) -> str:
    """Major units with exactly two decimals, as AltaPay and InterPay want them.

    500 JPY -> '500.00'; 1250 EUR -> '12.50'.
    """
    exponent = currency_info(currency).exponent
    value = Decimal(amount).scaleb(-exponent)
    if value != value.quantize(Decimal("0.01")):
        raise ValueError(f"{amount} {currency} cannot be written with two decimals")
    return f"{value:.2f}"


# ASCII digits only: "１２" or "٣" must not pass for an amount a gateway sent. Bounded before
# any arithmetic: no shop charges a sixteen-digit amount, and a number a stranger sends must
# not cost more to read than its few digits are worth (a million nines took seconds of CPU).
MAX_WHOLE_DIGITS = 15
MAX_FRACTION_DIGITS = 6
_DECIMAL = re.compile(
    rf"-?[0-9]{{1,{MAX_WHOLE_DIGITS}}}(\.[0-9]{{1,{MAX_FRACTION_DIGITS}}})?", re.ASCII
)


def from_major(text: str, currency: str) -> int:
    """A gateway's decimal major-unit string to minor units: '12.50' EUR -> 1250.

    Raises ``ValueError`` for anything that is not a plain decimal or that has more digits than
    the currency's minor unit: a gateway amount that does not convert exactly is not ours.
    """
    text = str(text).strip()
    if len(text) > MAX_WHOLE_DIGITS + MAX_FRACTION_DIGITS + 2 or not _DECIMAL.fullmatch(text):
        raise ValueError(
            f"not a decimal amount of at most {MAX_WHOLE_DIGITS} digits: {text[:30]!r}"
        )
    exponent = currency_info(currency).exponent
    value = Decimal(text).scaleb(exponent)
    if value != value.to_integral_value():
        raise ValueError(f"{text} has more decimals than {currency} allows")
    return int(value)


@functools.lru_cache(maxsize=4096)
def format_money(amount: int, currency: str, locale: str = "en_IE") -> str:
    """Minor units to what a person reads: 1250, 'EUR' -> '€12.50'; 1250, 'KWD' -> 'KWD1.250'.

    The locale decides symbol, placement and separators; the ISO exponent decides the digits
    (CLDR's own preference differs for a few currencies). Kept for the prices met most often:
    Babel's formatting costs more than the rest of a product card.
    """
    info = currency_info(currency)
    parsed, pattern = _money_pattern(locale, info.exponent)
    return pattern.apply(
        Decimal(amount).scaleb(-info.exponent), parsed, currency=info.code, currency_digits=False
    )


@functools.lru_cache(maxsize=64)
def _money_pattern(locale: str, exponent: int) -> tuple[Locale, NumberPattern]:
    # The locale's currency pattern with the ISO exponent's digits, parsed once: parsing it
    # again on every price cost more than the formatting itself on a page of products.
    parsed = Locale.parse(locale)
    standard = parsed.currency_formats["standard"].pattern.split(";")[0]
    fraction = "." + "0" * exponent if exponent else ""
    return parsed, parse_pattern(
        re.sub(r"0(\.0+)?(?=[^0-9.]*$)", "0" + fraction, standard, count=1)
    )
