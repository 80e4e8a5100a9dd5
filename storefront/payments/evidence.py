"""The evidence log: every exchange with a gateway and every decision about a payment, stored
against its attempt with its kind and who caused it. Rows are only ever added."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert

from storefront.extensions import db
from storefront.gateways.base import EventKind, Exchange, Journal
from storefront.payments.models import Cause, PaymentEvent
from storefront.timeutil import now_utc

# Core, on the table: the rows go out as they are, with no ORM objects to track and flush.
_INSERT = insert(PaymentEvent.metadata.tables["payment_event"])


def keep(journal: Journal, attempt_id: int, cause: Cause) -> None:
    """Add what ``journal`` holds to the attempt's evidence (in the caller's transaction), and
    empty it, so that the same journal can go on recording."""
    for entry in journal.entries:
        db.session.add(PaymentEvent(**_journal_row(entry, attempt_id, cause)))
    journal.entries.clear()


def add(attempt_id: int, kind: EventKind, summary: str, cause: Cause, detail: str = "") -> None:
    """One piece of evidence of the shop's own (a decision, an action, a refusal)."""
    db.session.add(PaymentEvent(**_row(attempt_id, kind, summary, cause, detail)))


def keep_with_decision(journal: Journal, attempt_id: int, cause: Cause, decision: str) -> None:
    """``keep`` then ``add`` of a decision, written at once (one INSERT of all the rows, in the
    caller's transaction) rather than as ORM objects to flush: the same rows, for a path that
    writes nothing else. The journal is emptied."""
    rows = [_journal_row(entry, attempt_id, cause) for entry in journal.entries]
    rows.append(_row(attempt_id, EventKind.DECISION, decision, cause, at=now_utc()))
    db.session.connection().execute(_INSERT, rows)
    journal.entries.clear()


def _journal_row(entry: Exchange, attempt_id: int, cause: Cause) -> dict:
    return _row(attempt_id, entry.kind, entry.summary, cause, entry.detail, at=entry.at)


def _row(
    attempt_id: int,
    kind: EventKind,
    summary: str,
    cause: Cause,
    detail: str = "",
    at: datetime | None = None,
) -> dict:
    """One evidence row's values; without ``at``, the row's own default (when it is written)."""
    row = {
        "attempt_id": attempt_id,
        "kind": kind,
        "summary": summary[:300],
        "detail": detail,
        "actor": cause.actor,
        "actor_name": cause.name,
    }
    if at is not None:
        row["at"] = at
    return row
