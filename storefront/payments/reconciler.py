"""The reconciler: what no browser or callback will tell us, we ask the gateways.

``flask payments reconcile`` (cron, or the Procfile's ``worker`` loop) resolves open payments
whose customer never came back and whose callback never came, acknowledges held payments of
gateways that finish on our acknowledgement, learns the outcome of back-office calls whose answer
was lost, and expires unpaid orders past their payment window, releasing their stock once.

Each attempt carries its own schedule: ``next_check_at``, the time of its next status query.
An attempt never checked is due once it is ``older_than`` seconds old (or its gateway's
``first_check_after``, unless the customer came back). After each check the wait comes from a
back-off list, one for unknown payments and one for pending ones
(``STOREFRONT_RECONCILE_UNKNOWN_BACKOFF`` / ``_PENDING_BACKOFF``): after the n-th check in a row
that finds the attempt in the same state (``check_streak``) it waits the n-th entry, the last
entry repeating; a check that finds it changed counts as the first again. A pending payment
also waits its gateway's ``recheck_pending_after`` at least.

Safe in any number of processes at once: due attempts are claimed a batch at a time by moving
their ``next_check_at`` forward by ``STOREFRONT_RECONCILE_CLAIM_SECONDS`` (a lease: a process
that dies mid-check leaves the attempt due again when it runs out). On PostgreSQL the claim
reads the rows ``FOR UPDATE SKIP LOCKED``, so that processes claiming at once take different
attempts without waiting for each other; on SQLite, whose writers take turns, the claim is a
conditional update of the ``next_check_at`` it read. The status query then also takes the
attempt's ``checked_at`` claim, shared with the pending pages, and every change is a guarded
transition.
"""

from __future__ import annotations

import logging
from collections.abc import Set
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, func, or_, select, update

from storefront.database import rows_changed
from storefront.extensions import db
from storefront.gateways import get_gateway
from storefront.gateways.base import Gateway
from storefront.ops import logs, metrics
from storefront.orders import service as orders
from storefront.orders.mail import drain
from storefront.orders.models import Order, OrderState
from storefront.payments.backoffice import RECONCILER, resolve_unknown_action
from storefront.payments.models import OPEN_STATES, AttemptState, PaymentAttempt
from storefront.payments.settle import claim_check, may_ask, settle
from storefront.timeutil import as_utc, now_utc

log = logging.getLogger("storefront.reconciler")
CHECKED_STATES = (*OPEN_STATES, AttemptState.AUTHORIZED)


def reconcile(older_than: float = 60, limit: int = 200) -> dict[str, int]:
    """One pass. ``older_than``: leave younger attempts to their customers, in seconds;
    ``limit``: at most this many status queries."""
    cutoff = now_utc() - timedelta(seconds=older_than)
    counts = {
        "checked": 0,
        "changed": 0,
        "actions_resolved": 0,
        "expired_orders": 0,
        "mails_sent": 0,
    }
    configured = current_app.config["GATEWAYS"]
    batch = max(1, int(current_app.config["RECONCILE_BATCH"]))
    seen: set[int] = set()
    while counts["checked"] < limit:
        claimed = claim_due(older_than, min(batch, limit - counts["checked"]), seen)
        if not claimed:
            break
        for attempt_id in claimed:
            seen.add(attempt_id)
            attempt = db.session.get_one(PaymentAttempt, attempt_id)
            before = attempt.state
            if not claim_check(attempt, older_than / 2):
                # A pending page has just asked: look again a little later.
                _reschedule(attempt, max(older_than / 2, 1.0), attempt.check_streak)
                continue
            settle(attempt, RECONCILER)
            schedule_next(attempt, before)
            counts["checked"] += 1
            counts["changed"] += attempt.state != before
            metrics.RECONCILER_CHECKS.labels(attempt.gateway, attempt.state).inc()
            logs.attempt_context.set(None)
    stuck = (
        db.session.execute(
            select(PaymentAttempt)
            .where(
                PaymentAttempt.action.is_not(None),
                PaymentAttempt.action_at < cutoff,
                PaymentAttempt.gateway.in_(configured),
            )
            .limit(limit)
        )
        .scalars()
        .all()
    )
    for attempt in stuck:
        if claim_check(attempt, older_than / 2):
            counts["actions_resolved"] += resolve_unknown_action(attempt)
    counts["expired_orders"] = expire_due_orders()
    # Mails whose sender died between the commit and the send go out now.
    counts["mails_sent"] = drain()
    metrics.RECONCILER_RUNS.inc()
    metrics.RECONCILER_LAST_RUN.set_to_current_time()
    log.info("reconcile", extra={"fields": counts})
    return counts


def _candidates(older_than: float):
    """The attempts the reconciler would ask about, due or not (a WHERE clause)."""
    configured = current_app.config["GATEWAYS"]
    acknowledging = [name for name in configured if get_gateway(name).acknowledges]
    return and_(
        PaymentAttempt.state.in_(CHECKED_STATES),
        PaymentAttempt.action.is_(None),
        PaymentAttempt.gateway.in_(configured),
        # A held payment waits for the operator, unless its gateway finishes on our Ack.
        or_(
            PaymentAttempt.state != AttemptState.AUTHORIZED,
            PaymentAttempt.gateway.in_(acknowledging),
        ),
    )


def claim_due(older_than: float, batch: int, skip: Set[int] = frozenset()) -> list[int]:
    """Claim up to ``batch`` due attempts for this process; their ids. Committed before any
    gateway is asked, so the row locks last only as long as the claim."""
    now = now_utc()
    cutoff = now - timedelta(seconds=older_than)
    due = or_(
        PaymentAttempt.next_check_at <= now,
        and_(PaymentAttempt.next_check_at.is_(None), PaymentAttempt.created_at < cutoff),
    )
    query = (
        select(PaymentAttempt)
        .where(_candidates(older_than), due, PaymentAttempt.id.not_in(skip or [0]))
        .order_by(func.coalesce(PaymentAttempt.next_check_at, PaymentAttempt.created_at))
        .limit(batch * 2)  # some may be too early for their gateway, and left
    )
    if db.engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=PaymentAttempt)
    lease = now + timedelta(seconds=float(current_app.config["RECONCILE_CLAIM_SECONDS"]))
    claimed: list[int] = []
    for attempt in db.session.execute(query).scalars().all():
        if len(claimed) == batch:
            break
        gateway = get_gateway(attempt.gateway)
        if _too_early(attempt, gateway, older_than):
            if attempt.next_check_at is not None and attempt.checked_at is not None:
                # Scheduled, but the gateway wants a longer pause since the last query (a
                # pending page asked): not before that pause is over.
                again = gateway.recheck_pending_after or older_than
                _take(attempt, as_utc(attempt.checked_at) + timedelta(seconds=again))
            continue
        if _take(attempt, lease):
            claimed.append(attempt.id)
    db.session.commit()
    return claimed


def _take(attempt: PaymentAttempt, until: datetime) -> bool:
    """Move the attempt's next check to ``until`` if no one moved it since we read it."""
    taken = rows_changed(
        update(PaymentAttempt)
        .where(
            PaymentAttempt.id == attempt.id,
            PaymentAttempt.next_check_at.is_not_distinct_from(attempt.next_check_at),
        )
        .values(next_check_at=until)
        .execution_options(synchronize_session=False)
    )
    return taken == 1


def schedule_next(attempt: PaymentAttempt, before: str) -> None:
    """After a check: when to ask again, from the back-off list of the state it was left in."""
    db.session.refresh(attempt)
    gateway = get_gateway(attempt.gateway)
    if attempt.state not in CHECKED_STATES or (
        attempt.state == AttemptState.AUTHORIZED and not gateway.acknowledges
    ):
        _reschedule(attempt, None, 0)  # settled, or waiting for the operator: no more checks
        return
    streak = attempt.check_streak + 1 if attempt.state == before else 1
    setting = "UNKNOWN" if attempt.state == AttemptState.UNKNOWN else "PENDING"
    waits = current_app.config[f"RECONCILE_{setting}_BACKOFF"]
    wait = waits[min(streak, len(waits)) - 1]
    if attempt.state == AttemptState.PENDING and gateway.recheck_pending_after:
        wait = max(wait, gateway.recheck_pending_after)
    _reschedule(attempt, wait, streak)


def _reschedule(attempt: PaymentAttempt, wait: float | None, streak: int) -> None:
    when = None if wait is None else now_utc() + timedelta(seconds=wait)
    db.session.execute(
        update(PaymentAttempt)
        .where(PaymentAttempt.id == attempt.id)
        .values(next_check_at=when, check_streak=streak)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def until_next(older_than: float, longest: float) -> float:
    """Seconds until the next scheduled check, expiry or lost action is due: how long a worker
    loop may sleep. At least 1, at most ``longest``."""
    now = now_utc()
    firsts: list[datetime] = []
    scheduled, unscheduled = db.session.execute(
        select(
            func.min(PaymentAttempt.next_check_at),
            func.min(PaymentAttempt.created_at).filter(PaymentAttempt.next_check_at.is_(None)),
        ).where(_candidates(older_than))
    ).one()
    if scheduled is not None:
        firsts.append(as_utc(scheduled))
    if unscheduled is not None:
        firsts.append(as_utc(unscheduled) + timedelta(seconds=older_than))
    action_at = db.session.execute(
        select(func.min(PaymentAttempt.action_at)).where(PaymentAttempt.action.is_not(None))
    ).scalar()
    if action_at is not None:
        firsts.append(as_utc(action_at) + timedelta(seconds=older_than))
    due_by = db.session.execute(
        select(func.min(Order.payment_due_by)).where(Order.state == OrderState.PENDING_PAYMENT)
    ).scalar()
    if due_by is not None:
        firsts.append(as_utc(due_by))
    db.session.commit()
    if not firsts:
        return longest
    return min(longest, max(1.0, (min(firsts) - now).total_seconds()))


def _too_early(attempt: PaymentAttempt, gateway: Gateway, default: float) -> bool:
    """Whether asking about a payment whose customer has not come back would do harm now.

    Gateways where an early status query interferes with the customer still on their page say
    so: ``first_check_after`` (seconds after the hand-off) and ``recheck_pending_after``
    (seconds between queries that found it undecided). InterPay cancels a session on the second
    GetResult before its page finished, yet reverses an approval not acknowledged within three
    minutes, so its adapter sets both.
    """
    if attempt.returned_at is not None or attempt.state == AttemptState.AUTHORIZED:
        return False
    now = now_utc()
    first = default if gateway.first_check_after is None else gateway.first_check_after
    if as_utc(attempt.created_at) > now - timedelta(seconds=first):
        return True
    return not may_ask(attempt, gateway)


def expire_due_orders(limit: int = 100) -> int:
    """Expire unpaid orders past their payment window that no payment is still open for.

    An attempt whose outcome we do not know keeps its order: nothing is cancelled without the
    gateway's word (the pass above asks it first).
    """
    open_attempt = (
        select(PaymentAttempt.id)
        .where(PaymentAttempt.order_id == Order.id, PaymentAttempt.state.in_(OPEN_STATES))
        .exists()
    )
    due = (
        db.session.execute(
            select(Order.id)
            .where(
                Order.state == OrderState.PENDING_PAYMENT,
                Order.payment_due_by < now_utc(),
                ~open_attempt,
            )
            .limit(limit)
        )
        .scalars()
        .all()
    )
    expired = 0
    for order_id in due:
        order = orders.lock(order_id)
        if orders.transition(
            order,
            OrderState.EXPIRED,
            "payment window closed without a payment; stock released",
        ):
            expired += 1
        db.session.commit()
    return expired
