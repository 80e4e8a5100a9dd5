"""The evidence log: every exchange with a gateway and every decision about a payment, stored
against its attempt with its kind and who caused it. Rows are only ever added."""

from __future__ import annotations

from storefront.extensions import db
from storefront.gateways.base import EventKind, Journal
from storefront.payments.models import Cause, PaymentEvent


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
