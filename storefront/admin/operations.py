"""The operator's checks on a payment: settle it now, or only ask the gateway what it says.

Capture, void and refund live in :mod:`storefront.payments.backoffice`; this module adds what
only the operator's pages need on top of it, so that the views stay thin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from storefront.extensions import db
from storefront.gateways import configured
from storefront.gateways.base import EventKind, Journal
from storefront.payments import evidence
from storefront.payments.backoffice import resolve_unknown_action
from storefront.payments.models import Actor, AttemptState, Cause, PaymentAttempt, PaymentEvent
from storefront.payments.settle import learn, settle
from storefront.timeutil import as_utc, now_utc

# A claimed action younger than this may still be waiting for the gateway (read timeout plus
# margin): resolving it now could free the claim under a call in flight, and allow a second.
ACTION_SETTLES_AFTER = timedelta(seconds=60)
CHECKABLE = (
    AttemptState.CREATED,
    AttemptState.REDIRECTED,
    AttemptState.PENDING,
    AttemptState.UNKNOWN,
    AttemptState.AUTHORIZED,
)
ANSWER_KINDS = (EventKind.RESPONSE, EventKind.CALLBACK, EventKind.ERROR)


def gateway_title(name: str) -> str:
    gateway = configured(name)
    return gateway.title if gateway is not None else name


@dataclass(frozen=True)
class CheckOutcome:
    ok: bool
    message: str


def check_now(attempt: PaymentAttempt, operator: str) -> CheckOutcome:
    """Ask the gateway about ``attempt`` and apply its answer, as the reconciler would."""
    if configured(attempt.gateway) is None:
        return CheckOutcome(False, f"The gateway {attempt.gateway} is not configured here.")
    before = attempt.state
    if attempt.action:
        claimed_at = as_utc(attempt.action_at) if attempt.action_at else now_utc()
        # An Ack may be sent again (the gateway answers a repeat as the first), and InterPay
        # reverses an approval left unacknowledged for 3 minutes: no waiting for that one.
        waits = attempt.action != "acknowledge"
        if waits and now_utc() - claimed_at < ACTION_SETTLES_AFTER:
            return CheckOutcome(
                False, f"The action {attempt.action} is under way. Check again in a minute."
            )
        if not resolve_unknown_action(
            attempt, Cause(Actor.STAFF, f"operator check by {operator}", operator)
        ):
            return CheckOutcome(
                False,
                f"The gateway still does not answer about {attempt.action}. "
                "The outcome will be checked automatically.",
            )
        return CheckOutcome(
            True,
            f"The gateway's record of the lost action was applied: {before} → {attempt.state}.",
        )
    if attempt.state not in CHECKABLE:
        return CheckOutcome(False, f"This payment is {_words(attempt.state)}: nothing to check.")
    settle(attempt, Cause(Actor.STAFF, f"operator check by {operator}", operator))
    if attempt.state == before:
        return CheckOutcome(True, f"Checked with the gateway: still {_words(attempt.state)}.")
    return CheckOutcome(
        True, f"Checked with the gateway: {_words(before)} → {_words(attempt.state)}."
    )


def look_up(attempt: PaymentAttempt, operator: str) -> dict | None:
    """What the gateway says about ``attempt``, changing nothing but the evidence log.

    None if the gateway is not configured. The exchange is kept as evidence like any other.
    """
    if configured(attempt.gateway) is None:
        return None
    cause = Cause(Actor.STAFF, f"look-up by {operator}", operator)
    journal = Journal()
    result = learn(attempt, None, journal)
    evidence.keep(journal, attempt.id, cause)
    evidence.add(
        attempt.id,
        EventKind.DECISION,
        f"{cause}: gateway says {result.outcome} ({result.codes or 'no codes'}); "
        f"ours is {attempt.state}; nothing changed",
        cause,
    )
    db.session.commit()
    return {
        "outcome": str(result.outcome),
        "codes": result.codes,
        "amount": result.amount,
        "currency": result.currency or attempt.currency,
        "captured": result.captured,
        "refunded": result.refunded,
        "at": now_utc().strftime("%H:%M:%S UTC"),
    }


def latest_answer(attempt: PaymentAttempt) -> PaymentEvent | None:
    """The gateway's latest word on ``attempt`` among its (loaded) evidence."""
    return next((e for e in reversed(attempt.events) if e.kind in ANSWER_KINDS), None)


def latest_evidence(attempt_id: int) -> PaymentEvent | None:
    """What the gateway answered to the back-office action just made, read fresh.

    The decision taken on the operator's action names the gateway's own codes ("gateway says
    paid (orderStatus=2 …)"), which tell the operator more than an HTTP status; without one,
    the newest raw answer.
    """
    events = db.session.execute(
        select(PaymentEvent)
        .where(
            PaymentEvent.attempt_id == attempt_id,
            PaymentEvent.kind.in_((*ANSWER_KINDS, EventKind.DECISION)),
        )
        .order_by(PaymentEvent.id.desc())
        .limit(20)
    ).scalars()
    fallback = None
    for event in events:
        if event.kind == EventKind.DECISION and event.actor == Actor.STAFF:
            return event
        if fallback is None and event.kind in ANSWER_KINDS:
            fallback = event
    return fallback


def _words(state: str) -> str:
    return str(state).replace("_", " ")
