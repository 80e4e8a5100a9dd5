"""The basket a gateway is sent: the frozen order's lines and its delivery, each with its VAT.

Built from the order alone (its ``OrderLine`` rows, ``delivery_name``/``delivery_price`` and its
``OrderTax`` rows), never from the catalogue, so that every attempt at paying an order sends
the same basket. Amounts are integer minor units, VAT included, and two sums hold exactly:

- the lines' totals add up to ``Order.total``, the amount the gateway is asked to charge;
- per tax class, the lines' VAT adds up to the VAT stored for that class (``OrderTax.vat``).

``orders.vat`` rounds the VAT once per rate, so a line's own share of it is rarely a whole
minor unit. Each rate's VAT is shared out over that rate's lines by the largest remainder
method: every line gets the whole part of its exact share (``vat × line / rate's gross``),
and the minor units left over go one each to the lines with the largest fractions (the
earlier line on a tie). No line's VAT is then more than one minor unit from its exact share.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from storefront.orders import vat
from storefront.orders.models import Order


class LineKind(StrEnum):
    ITEM = "item"
    DELIVERY = "delivery"


@dataclass(frozen=True)
class BasketLine:
    name: str
    quantity: int
    unit_price: int  # minor units, VAT included
    tax_class: str
    rate: int  # hundredths of a percent
    vat: int  # minor units: this line's share of its rate's VAT
    code: str  # the shop's id of what is sold: the product id, or "delivery"
    kind: LineKind = LineKind.ITEM

    @property
    def total(self) -> int:
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class Basket:
    currency: str
    lines: tuple[BasketLine, ...]

    @property
    def total(self) -> int:
        return sum(line.total for line in self.lines)

    def vat_by_class(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for line in self.lines:
            found[line.tax_class] = found.get(line.tax_class, 0) + line.vat
        return found


def share(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` split over ``weights`` in proportion, in whole units, by largest remainder.

    The parts add up to ``total`` exactly; an all-zero list of weights gets nothing.
    """
    whole = sum(weights)
    if whole == 0:
        return [0] * len(weights)
    parts = [total * weight // whole for weight in weights]
    remainders = [total * weight % whole for weight in weights]
    left = total - sum(parts)
    # Largest remainder first; on a tie, the earlier line (sorted() is stable).
    for index in sorted(range(len(weights)), key=lambda i: -remainders[i])[:left]:
        parts[index] += 1
    return parts


def of(order: Order, rates: Mapping[str, int]) -> Basket:
    """The basket of ``order``: its lines in order, then the delivery, where it costs or is
    named (taxed at the standard rate, as ``orders.vat`` taxes it).

    ``rates`` (the ``VAT_RATES`` setting) is read only for a class with no stored ``OrderTax``
    row matching the lines (an order placed before VAT was stored): its VAT is then worked
    out as ``orders.vat`` would have done. An unknown class is refused (``KeyError``), as there.
    """
    entries: list[tuple[str, int, int, str, str, LineKind]] = [
        (
            line.name,
            line.quantity,
            line.unit_price,
            line.tax_class,
            str(line.product_id) if line.product_id is not None else f"line-{n}",
            LineKind.ITEM,
        )
        for n, line in enumerate(order.lines, start=1)
    ]
    if order.delivery_price or order.delivery_name:
        entries.append(
            (
                order.delivery_name or "Delivery",
                1,
                order.delivery_price,
                vat.STANDARD,
                "delivery",
                LineKind.DELIVERY,
            )
        )
    taxes = _taxes_by_class(order, entries, rates)
    shares: dict[int, int] = {}
    for tax_class, (_, owed) in taxes.items():
        members = [i for i, entry in enumerate(entries) if entry[3] == tax_class]
        parts = share(owed, [entries[i][1] * entries[i][2] for i in members])
        shares.update(zip(members, parts, strict=True))
    lines = tuple(
        BasketLine(
            name=name,
            quantity=quantity,
            unit_price=unit_price,
            tax_class=tax_class,
            rate=taxes[tax_class][0],
            vat=shares[i],
            code=code,
            kind=kind,
        )
        for i, (name, quantity, unit_price, tax_class, code, kind) in enumerate(entries)
    )
    return Basket(currency=order.currency, lines=lines)


def _taxes_by_class(
    order: Order, entries: Iterable[tuple], rates: Mapping[str, int]
) -> dict[str, tuple[int, int]]:
    """(rate, VAT) per tax class of the basket: the stored row where it covers exactly the
    lines of its class, else worked out afresh."""
    gross: dict[str, int] = {}
    for _, quantity, unit_price, tax_class, _, _ in entries:
        gross[tax_class] = gross.get(tax_class, 0) + quantity * unit_price
    stored = {tax.tax_class: tax for tax in order.taxes}
    taxes: dict[str, tuple[int, int]] = {}
    for tax_class, amount in gross.items():
        row = stored.get(tax_class)
        if row is not None and row.gross == amount:
            taxes[tax_class] = (row.rate, row.vat)
        else:
            if tax_class not in rates:
                raise KeyError(f"no VAT rate configured for tax class {tax_class!r}")
            taxes[tax_class] = (rates[tax_class], vat.vat_in(amount, rates[tax_class]))
    return taxes
