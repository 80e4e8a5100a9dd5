"""Settling: whatever comes back from a gateway goes through ``settle``, once.

``settle`` is the one path for the browser return, the gateway's callback, the pending page,
the operator's "check now" and the reconciler:

1. authenticate — the adapter parsed the notice (and verified its signature, where it has one);
2. the gateway's answer — a status query, or the verified signed body;
3. bind it to the order — same payment, merchant, amount and currency, else ``mismatch``;
4. a guarded transition — ``UPDATE … WHERE state IN (…)`` under the order's row lock;
5. effects once — the order's move (``ORDER_FOR_ATTEMPT``), with its stock and mail, or the
   mail of a failed try (``FAILURES_MAILED``);
6. answer only after the commit (the caller renders or acknowledges afterwards).

Network calls are never made inside a database transaction, so a slow gateway holds no lock.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import joinedload

from storefront.database import rows_changed
from storefront.extensions import db
from storefront.gateways import get_gateway
from storefront.gateways.base import (
    AttemptRef,
    EventKind,
    Gateway,
    GatewayError,
    Journal,
    Notice,
    Outcome,
    Result,
)
from storefront.ops import observe
from storefront.orders import mail
from storefront.orders import service as orders
from storefront.orders.models import Order, OrderState
from storefront.payments import evidence
from storefront.payments.models import (
    ALLOWED_FROM,
    FAILED_STATES,
    AttemptState,
    Cause,
    PaymentAttempt,
)
from storefront.timeutil import as_utc, now_utc

S = AttemptState
# What the gateway's word makes of the attempt.
TARGET = {
    Outcome.PAID: S.PAID,
    Outcome.AUTHORIZED: S.AUTHORIZED,
    Outcome.PENDING: S.PENDING,
    Outcome.DECLINED: S.DECLINED,
    Outcome.CANCELLED: S.CANCELLED,
    Outcome.EXPIRED: S.EXPIRED,
    Outcome.VOIDED: S.VOIDED,
    Outcome.REFUNDED: S.REFUNDED,
}
MONEY_IN = (Outcome.PAID, Outcome.AUTHORIZED)
# What an attempt's move means for its order; an attempt state not listed leaves the order as
# it is (a declined try leaves the order payable by another). The order's own pipeline
# (``orders.models.ORDER_PIPELINE``) decides whether the move is allowed from where it stands.
ORDER_FOR_ATTEMPT = {
    S.PAID: OrderState.PAID,
    S.AUTHORIZED: OrderState.AUTHORIZED,
    S.MISMATCH: OrderState.ON_HOLD,
    S.VOIDED: OrderState.CANCELLED,
    S.PARTIALLY_REFUNDED: OrderState.PARTIALLY_REFUNDED,
    S.REFUNDED: OrderState.REFUNDED,
}
# A try the customer can make good: the mail of each one, keyed by the attempt's number, with a
# link that starts the next try (an attempt that expired or never started asked nothing of the
# customer, and an order no longer payable has nothing to pay).
FAILURE_MAIL = "payment_failed"
FAILURES_MAILED = (S.DECLINED, S.CANCELLED)


def attempt_ref(attempt: PaymentAttempt) -> AttemptRef:
    """What an adapter may know of an attempt: ids and amounts, never the database row."""
    return AttemptRef(
        reference=attempt.reference,
        gateway_id=attempt.gateway_id,
        amount=attempt.amount,
        currency=attempt.currency,
        captured=attempt.captured,
        refunded=attempt.refunded,
        data=attempt.gateway_data,
    )


def find_attempt(gateway: str, reference: str | None, gateway_id: str | None):
    """The attempt a notice names. When it gives both our reference and the gateway's id, both
    must belong to the same attempt: a notice mixing two payments' ids names neither."""
    if not reference and not gateway_id:
        return None
    # With its order: every notice names the order on its log lines (observe.attempt).
    query = (
        select(PaymentAttempt)
        .options(joinedload(PaymentAttempt.order))
        .where(PaymentAttempt.gateway == gateway)
    )
    if reference:
        query = query.where(PaymentAttempt.reference == reference)
    if gateway_id:
        query = query.where(PaymentAttempt.gateway_id == gateway_id)
    return db.session.execute(query).scalar_one_or_none()


def settle(
    attempt: PaymentAttempt,
    cause: Cause,
    notice: Notice | None = None,
    journal: Journal | None = None,
) -> Result:
    """Learn the gateway's word on ``attempt`` and apply it once; the attempt is refreshed in
    place. Returns the word applied (``unknown`` when the gateway could not be asked)."""
    observe.attempt(attempt)
    gateway = get_gateway(attempt.gateway)
    journal = journal or Journal()
    if notice is not None and notice.says is not None and _holds(attempt, notice.says):
        # A signed notice of what the attempt already records (a gateway's retry, a duplicate):
        # kept as evidence and acknowledged, without another round trip to the gateway.
        state = attempt.state  # read before the commit expires it: no reload to count it
        evidence.keep_with_decision(
            journal,
            attempt.id,
            cause,
            f"{cause}: a repeat of what the shop holds ({state}); not asked again",
        )
        db.session.commit()
        observe.settled(attempt, state, False)  # the gateway's word, already applied
        return Result(outcome=notice.says, codes="repeat")
    result = learn(attempt, notice, journal)
    if notice is not None and notice.result is not None:
        target, reason = decide(attempt, result, gateway)
        if target == S.MISMATCH:
            # A signed body that does not fit the order proves only that someone holds the
            # secret: the gateway's own status query, which no one can forge, decides instead.
            journal.record(
                EventKind.DECISION,
                f"{cause}: signed result does not fit the order; asking the gateway ({reason})",
            )
            result = learn(attempt, None, journal)
        elif result.outcome in MONEY_IN and not _repeats(attempt, target, result):
            # AltaPay's checksum covers the amount, currency and order id, not the status: the
            # signature of a declined try, posted with a "captured" body, would read as paid.
            # Money in is believed only from the gateway's own status query; a repeat of what
            # we already hold changes nothing and needs no second look.
            journal.record(
                EventKind.DECISION,
                f"{cause}: signed body says {result.outcome}; confirming with the gateway",
            )
            result = learn(attempt, None, journal)
    apply_result(attempt, result, journal, cause)
    if attempt.state == S.AUTHORIZED and gateway.acknowledges:
        _acknowledge(attempt, gateway, journal, cause)
    mail.drain_after_response(attempt.order_id)
    return result


def _holds(attempt: PaymentAttempt, says: Outcome) -> bool:
    """Whether the attempt already is where a notice saying ``says`` would move it."""
    if says is Outcome.PAID:
        return attempt.state == S.PAID and attempt.refunded == 0
    return attempt.state == TARGET.get(says)


def _repeats(attempt: PaymentAttempt, target: S | None, result: Result) -> bool:
    """Whether ``result`` says exactly what the attempt already records."""
    return (
        target == attempt.state
        and result.amount == attempt.authorized
        and result.captured in (None, attempt.captured)
        and result.refunded in (None, attempt.refunded)
    )


def learn(attempt: PaymentAttempt, notice: Notice | None, journal: Journal) -> Result:
    """The gateway's answer: the verified signed body if the notice has one, else a query.
    A query that fails is an ``unknown`` result, never a failed payment."""
    if notice is not None and notice.result is not None:
        return notice.result
    try:
        return get_gateway(attempt.gateway).fetch_result(attempt_ref(attempt), journal)
    except GatewayError as exc:
        return Result(outcome=Outcome.UNKNOWN, codes=str(exc)[:200])


def _acknowledge(attempt: PaymentAttempt, gateway: Gateway, journal: Journal, cause: Cause):
    # Acknowledge only now that "authorized" is durable, and once however many returns arrive
    # together: the Ack is claimed on the attempt like a back-office action. A lost answer keeps
    # the claim, and the reconciler learns from the gateway whether the capture happened.
    if not claim_action(attempt, "acknowledge"):
        return
    db.session.refresh(attempt)
    if attempt.state != S.AUTHORIZED:  # another request acknowledged it before our claim
        release_action(attempt)
        return
    try:
        result = gateway.acknowledge(attempt_ref(attempt), journal)
    except GatewayError as exc:
        result = Result(outcome=Outcome.UNKNOWN, codes=f"acknowledge: {exc}"[:200])
    if result is not None:
        apply_result(attempt, result, journal, Cause(cause.actor, "acknowledge", cause.name))
    if result is None or result.outcome is not Outcome.UNKNOWN:
        release_action(attempt)


def claim_action(attempt: PaymentAttempt, action: str) -> bool:
    """Claim ``attempt`` for one gateway action (an Ack, a capture, …): True for one caller only,
    across threads and processes, until ``release_action``."""
    claimed = rows_changed(
        update(PaymentAttempt)
        .where(PaymentAttempt.id == attempt.id, PaymentAttempt.action.is_(None))
        .values(action=action, action_at=now_utc())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return claimed == 1


def release_action(attempt: PaymentAttempt) -> None:
    db.session.execute(
        update(PaymentAttempt).where(PaymentAttempt.id == attempt.id).values(action=None)
    )
    db.session.commit()
    db.session.refresh(attempt)


def apply_result(attempt: PaymentAttempt, result: Result, journal: Journal, cause: Cause) -> None:
    """Bind ``result`` to the attempt's order and make the transition it calls for, once."""
    order = orders.lock(attempt.order_id)
    # Under the order's lock, read the attempt as it is now: another request may have moved it
    # (or stored ids in its gateway data) since this one loaded it.
    db.session.refresh(attempt)
    gateway = get_gateway(attempt.gateway)
    target, reason = decide(attempt, result, gateway)
    evidence.keep(journal, attempt.id, cause)
    moved = False
    if target is not None:
        moved = (
            rows_changed(
                update(PaymentAttempt)
                .where(
                    PaymentAttempt.id == attempt.id, PaymentAttempt.state.in_(ALLOWED_FROM[target])
                )
                .values(**_values_from(result, target, attempt))
                .execution_options(synchronize_session=False)
            )
            == 1
        )
    summary = f"{cause}: gateway says {result.outcome} ({result.codes or 'no codes'})"
    amounts = _amounts_moved(attempt, result, target) if not moved else {}
    if amounts and (target is None or not _update_amounts(attempt, target, amounts)):
        amounts = {}
    if target is None:
        summary += f"; no change: {reason}"
    elif moved:
        summary += f"; {attempt.state} → {target}" + (f" ({reason})" if reason else "")
    elif amounts:
        summary += f"; still {attempt.state}, " + ", ".join(
            f"{name} {getattr(attempt, name)} → {value}" for name, value in amounts.items()
        )
    else:
        summary += f"; already {attempt.state}, nothing to do"
    evidence.add(attempt.id, EventKind.DECISION, summary, cause)
    db.session.execute(
        update(PaymentAttempt).where(PaymentAttempt.id == attempt.id).values(checked_at=now_utc())
    )
    if moved and target is not None:
        _move_order(order, attempt, target, reason, gateway)
    elif amounts:
        ref = f"payment {attempt.reference}"
        if "captured" in amounts:
            orders.note(order, f"{ref}: more of the hold captured")
        if "released" in amounts:
            orders.note(order, f"{ref}: the rest of the hold released; nothing is held any more")
    db.session.commit()
    db.session.refresh(attempt)
    observe.settled(attempt, target, moved)


def _amounts_moved(attempt: PaymentAttempt, result: Result, target: S | None) -> dict[str, int]:
    """The amounts an answer changes on a captured payment that stays where it is: a second
    capture of what was still held, or the rest of the hold released."""
    if target is None or target != attempt.state or target not in (S.PAID, S.PARTIALLY_REFUNDED):
        return {}
    changed = {}
    if result.captured is not None and result.captured > attempt.captured:
        changed["captured"] = result.captured
    if result.released is not None and result.released != attempt.released:
        changed["released"] = result.released
    return changed


def _update_amounts(attempt: PaymentAttempt, state: S, amounts: dict[str, int]) -> bool:
    return (
        rows_changed(
            update(PaymentAttempt)
            .where(PaymentAttempt.id == attempt.id, PaymentAttempt.state == state)
            .values(**amounts, updated_at=now_utc())
            .execution_options(synchronize_session=False)
        )
        == 1
    )


def decide(attempt: PaymentAttempt, result: Result, gateway: Gateway) -> tuple[S | None, str]:
    """The attempt state ``result`` calls for (None: no change), and why."""
    if result.outcome is Outcome.UNKNOWN:
        return None, "the gateway's answer could not be had"
    if result.gateway_id and attempt.gateway_id and result.gateway_id != attempt.gateway_id:
        return _mismatch(result, "the answer is for another payment")
    if result.reference and result.reference != attempt.reference:
        return _mismatch(result, "the answer is for another order number")
    if result.merchant and gateway.merchant and result.merchant != gateway.merchant:
        return _mismatch(result, f"the answer is for another merchant ({result.merchant})")
    if result.outcome in MONEY_IN:
        if result.currency != attempt.currency:
            return S.MISMATCH, f"currency {result.currency} is not the order's {attempt.currency}"
        if result.amount != attempt.amount:
            return S.MISMATCH, f"amount {result.amount} is not the order's {attempt.amount}"
    target = TARGET[result.outcome]
    if target == S.PAID and result.refunded and attempt.state in (S.PAID, S.PARTIALLY_REFUNDED):
        # Some deployments keep reporting "deposited" after a partial refund.
        target = S.REFUNDED
    if target == S.REFUNDED and result.refunded is not None and result.captured:
        target = S.REFUNDED if result.refunded >= result.captured else S.PARTIALLY_REFUNDED
    return target, ""


def _mismatch(result: Result, reason: str) -> tuple[S | None, str]:
    # Money that arrived for something that is not this payment goes to the operator; any other
    # answer about a different payment is simply not ours to apply.
    return (S.MISMATCH, reason) if result.outcome in MONEY_IN else (None, reason)


def _values_from(result: Result, target: S, attempt: PaymentAttempt) -> dict[str, Any]:
    values: dict[str, Any] = {"state": target, "updated_at": now_utc()}
    if target in (S.PAID, S.AUTHORIZED):
        values["authorized"] = result.amount or attempt.amount
    if target == S.PAID:
        values["captured"] = result.captured if result.captured else (result.amount or 0)
    if target == S.VOIDED and result.captured is not None:
        values["captured"] = result.captured  # a reversed capture is no longer captured
    if result.refunded is not None:
        values["refunded"] = result.refunded
    if result.released is not None:
        values["released"] = result.released
    if result.masked_card:
        values["masked_card"] = result.masked_card
    if result.gateway_ref:
        values["gateway_ref"] = result.gateway_ref
    if result.message or target in FAILED_STATES:
        values["message"] = (result.message or "The payment was not completed.")[:300]
    if result.data:
        values["gateway_data_json"] = json.dumps({**attempt.gateway_data, **result.data})
    return values


def _move_order(order: Order, attempt: PaymentAttempt, target: S, reason: str, gateway) -> None:
    if (
        target in FAILURES_MAILED
        and order.state == OrderState.PENDING_PAYMENT
        and as_utc(order.payment_due_by) > now_utc()
    ):
        orders.queue_message(order, FAILURE_MAIL, attempt.seq)
    to = ORDER_FOR_ATTEMPT.get(target)
    if to is None or (target == S.AUTHORIZED and gateway.acknowledges):
        # An approval that only our Ack makes final: the order is paid on the confirmed capture.
        return
    if target == S.VOIDED and order.state == OrderState.PENDING_PAYMENT:
        # Such an approval reversed before it was final (InterPay's Ack window closed): the
        # order never held the money and stays payable. Only staff or the customer cancel an
        # unpaid order (pending_payment → cancelled is theirs).
        return
    ref = f"payment {attempt.reference}"
    note = {
        S.PAID: f"{ref} captured",
        S.AUTHORIZED: f"{ref} authorized; to be captured",
        S.MISMATCH: f"{ref}: {reason}",
        S.VOIDED: f"{ref} voided; stock released",
    }.get(target, f"{ref} {target.replace('_', ' ')}")
    if not orders.transition(order, to, note) and target in (S.PAID, S.AUTHORIZED):
        _late_money(order, ref)


# Orders whose stock went back before the money came: the money is neither lost nor kept in
# silence, the order waits for a person (refund it, or restock and send it).
LATE_MONEY = {
    OrderState.EXPIRED: "paid after the order expired and its stock was released",
    OrderState.CANCELLED: "paid after the order was cancelled and its stock was released",
}


def _late_money(order: Order, ref: str) -> None:
    why = LATE_MONEY.get(OrderState(order.state))
    if why is not None:
        orders.transition(order, OrderState.ON_HOLD, f"{ref} {why}; to be refunded or sent")
    else:
        orders.note(
            order,
            f"{ref} paid while the order was already {order.state}: "
            "a second payment, to be refunded",
        )


# Checking again ---------------------------------------------------------------------------
def claim_check(attempt: PaymentAttempt, spacing: float) -> bool:
    """True if this caller may ask the gateway about ``attempt`` now.

    Pending pages and the reconciler ask at most once per ``spacing`` seconds per attempt,
    whichever process asks: the claim is a conditional update of ``checked_at``.
    """
    now = now_utc()
    cutoff = now - timedelta(seconds=spacing)
    claimed = rows_changed(
        update(PaymentAttempt)
        .where(
            PaymentAttempt.id == attempt.id,
            or_(PaymentAttempt.checked_at.is_(None), PaymentAttempt.checked_at < cutoff),
        )
        .values(checked_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return claimed == 1


def may_ask(attempt: PaymentAttempt, gateway: Gateway) -> bool:
    """Whether the gateway's own rules let anyone ask about ``attempt`` now. A gateway whose
    status query interferes with a customer still on its page says how long to wait after an
    undecided answer (``recheck_pending_after``): InterPay cancels a session on the second
    GetResult before its page finished. Returns, pending pages and the reconciler all obey."""
    again = gateway.recheck_pending_after
    return not (
        again
        and attempt.state == S.PENDING
        and attempt.checked_at is not None
        and as_utc(attempt.checked_at) > now_utc() - timedelta(seconds=again)
    )


def due_for_check(attempt: PaymentAttempt, spacing: float) -> bool:
    return attempt.checked_at is None or as_utc(attempt.checked_at) < now_utc() - timedelta(
        seconds=spacing
    )


def mark_returned(attempt: PaymentAttempt) -> None:
    db.session.execute(
        update(PaymentAttempt)
        .where(PaymentAttempt.id == attempt.id, PaymentAttempt.returned_at.is_(None))
        .values(returned_at=now_utc())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    db.session.refresh(attempt)
