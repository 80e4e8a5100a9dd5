"""The orders list as a CSV file: the same filters as the page, every matching order.

The file is written row by row as the database hands the orders over (``yield_per``), so a
year of orders costs the server a chunk's worth of memory, not the year's. A cell a
spreadsheet would read as a formula (OWASP's "CSV injection": a customer named
``=HYPERLINK(…)``) is prefixed with ``'``, so it is shown as text and never run.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

from flask import Response, stream_with_context

from storefront.admin import queries
from storefront.admin.views import bp, order_filters
from storefront.extensions import db
from storefront.money import to_major
from storefront.orders.models import Order
from storefront.timeutil import as_utc, now_utc

COLUMNS = (
    "Number",
    "Placed at",
    "State",
    "Customer name",
    "Email",
    "Total",
    "Currency",
    "Payment gateway",
    "Payment state",
)
CHUNK = 500  # orders read from the database at a time
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: str) -> str:
    """``value`` as a spreadsheet shows it as text: a would-be formula gets a leading ``'``."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def order_row(order: Order) -> list[str]:
    attempt = order.latest_attempt
    cells = [
        order.number,
        as_utc(order.created_at).isoformat(),
        order.state,
        order.name,
        order.email,
        to_major(order.total, order.currency),
        order.currency,
        attempt.gateway if attempt else "",
        attempt.state if attempt else "",
    ]
    return [safe_cell(cell) for cell in cells]


def csv_lines(orders: Iterable[Order]) -> Iterator[str]:
    """The header, then one line per order, each as soon as it is written."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(COLUMNS)
    yield flush()
    for order in orders:
        writer.writerow(order_row(order))
        yield flush()


@bp.get("/orders.csv")
def orders_csv():
    """Every order the list's filters select, newest first, as a CSV download; a filter that
    does not validate is left out, as on the page."""
    _, filters = order_filters()
    query = queries.orders_matching(filters).execution_options(yield_per=CHUNK)

    def orders() -> Iterator[Order]:
        # Read while the body is written, in the request context kept for it: the view's
        # session was removed at the request's teardown, before the first line went out.
        yield from db.session.execute(query).scalars()

    filename = f"orders-{now_utc():%Y%m%d-%H%M%S}.csv"
    return Response(
        stream_with_context(csv_lines(orders())),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            # Customers' names and emails: not for a shared cache.
            "Cache-Control": "no-store",
        },
    )
