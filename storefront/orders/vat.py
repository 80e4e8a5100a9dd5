"""VAT carried by an order's VAT-inclusive prices, per rate, in integer minor units.

Prices include VAT. The lines of one tax class (and the delivery, taxed at the standard rate)
are summed first; the VAT of that gross amount at rate ``r`` (hundredths of a percent) is
``gross * r / (10000 + r)``, rounded once per rate, half up, to a whole minor unit. Rounding
per rate rather than per line keeps the VAT shown equal to what the rate gives on the amount
the customer pays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

STANDARD = "standard"


@dataclass(frozen=True)
class TaxAmount:
    tax_class: str
    rate: int  # hundredths of a percent: 2300 is 23 %
    gross: int  # minor units, VAT included
    vat: int  # minor units

    @property
    def net(self) -> int:
        return self.gross - self.vat

    @property
    def percent(self) -> str:
        whole, part = divmod(self.rate, 100)
        return f"{whole}.{part:02d}".rstrip("0").rstrip(".") + " %"


def vat_in(gross: int, rate: int) -> int:
    """The VAT in ``gross`` (VAT included) at ``rate``, half up to a whole minor unit."""
    if gross < 0 or rate < 0:
        raise ValueError("gross amounts and rates are never negative")
    numerator, denominator = gross * rate, 10000 + rate
    return (2 * numerator + denominator) // (2 * denominator)


def breakdown(
    lines: Iterable[tuple[int, str]], delivery: int, rates: Mapping[str, int]
) -> list[TaxAmount]:
    """VAT per rate of ``lines`` (gross amount, tax class) and ``delivery`` (standard rate).

    A tax class with no configured rate is refused: an unknown class must not pass untaxed.
    """
    gross: dict[str, int] = {}
    for amount, tax_class in lines:
        if tax_class not in rates:
            raise KeyError(f"no VAT rate configured for tax class {tax_class!r}")
        gross[tax_class] = gross.get(tax_class, 0) + amount
    if delivery:
        gross[STANDARD] = gross.get(STANDARD, 0) + delivery
    return [
        TaxAmount(tax_class=c, rate=rates[c], gross=g, vat=vat_in(g, rates[c]))
        for c, g in sorted(gross.items(), key=lambda item: -rates[item[0]])
    ]
