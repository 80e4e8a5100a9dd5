"""The evidence log: every exchange with a gateway and every decision about a payment, stored
against its attempt with its kind and who caused it. Rows are only ever added."""

from __future__ import annotations

from sqlalchemy import insert

from storefront.extensions import db
from storefront.gateways.base import EventKind, Journal
from storefront.payments.models import Cause, PaymentEvent
from storefront.timeutil import now_utc

# Core, on the table: the rows go out as they are, with no ORM objects to track and flush.
_INSERT = insert(PaymentEvent.metadata.tables["payment_event"])


def keep(journal: Journal, attempt_id: int, cause: Cause) -> None:
    """Add what ``journal`` holds to the attempt's evidence (in the caller's transaction), and
    empty it, so that the same journal can go on recording."""
    for entry in journal.entries:
        db.session.add(
            PaymentEvent(
                attempt_id=attempt_id,
                at=entry.at,
                kind=entry.kind,
                summary=entry.summary[:300],
                detail=entry.detail,
                actor=cause.actor,
                actor_name=cause.name,
            )
        )
    journal.entries.clear()


def add(attempt_id: int, kind: EventKind, summary: str, cause: Cause, detail: str = "") -> None:
    """One piece of evidence of the shop's own (a decision, an action, a refusal)."""
    db.session.add(
        PaymentEvent(
            attempt_id=attempt_id,
            kind=kind,
            summary=summary[:300],
            detail=detail,
            actor=cause.actor,
            actor_name=cause.name,
        )
    )


def keep_with_decision(journal: Journal, attempt_id: int, cause: Cause, decision: str) -> None:
    """``keep`` then ``add`` of a decision, written at once (one INSERT of all the rows, in the
    caller's transaction) rather than as ORM objects to flush: the same rows, for a path that
    writes nothing else. The journal is emptied."""
    actor, name = cause.actor, cause.name
    rows = [
        {
            "attempt_id": attempt_id,
            "at": entry.at,
            "kind": entry.kind,
            "summary": entry.summary[:300],
            "detail": entry.detail,
            "actor": actor,
            "actor_name": name,
        }
        for entry in journal.entries
    ]
    rows.append(
        {
            "attempt_id": attempt_id,
            "at": now_utc(),
            "kind": EventKind.DECISION,
            "summary": decision[:300],
            "detail": "",
            "actor": actor,
            "actor_name": name,
        }
    )
    db.session.connection().execute(_INSERT, rows)
    journal.entries.clear()
