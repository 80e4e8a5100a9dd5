"""Payments: hand an order to a gateway, and ``settle`` whatever comes back.

``settle`` is the one path for the browser return, the gateway's callback and the reconciler:

1. authenticate — the adapter parsed the notice (and verified its signature, where it has one);
2. the gateway's answer — a status query, or the verified signed body;
3. bind it to the order — same payment, same amount, same currency, else ``mismatch``/on hold;
4. a guarded transition — ``UPDATE … WHERE state IN (…)`` under the order's row lock;
5. effects once — stock and the confirmation email (outbox) in the same transaction;
6. answer only after the commit (the caller renders or acknowledges afterwards).

Network calls are never made inside a database transaction, so a slow gateway holds no lock.
"""

from __future__ import annotations

import json
from datetime import timedelta

from flask import current_app, url_for
from sqlalchemy import func, or_, select, update

from storefront.extensions import db
from storefront.gateways import get_gateway
from storefront.gateways.base import (
    AttemptRef,
    GatewayError,
    GatewayRefused,
    Line,
    Notice,
    Outcome,
    PaymentRequest,
    Result,
)
from storefront.orders import mail
from storefront.orders import service as orders
from storefront.orders.models import Order, OrderState
from storefront.payments.models import (
    FAILED_STATES,
    OPEN_STATES,
    AttemptState,
    PaymentAttempt,
    PaymentEvent,
)
from storefront.timeutil import as_utc, now_utc

S = AttemptState
OPEN = tuple(OPEN_STATES)
FAILED = tuple(FAILED_STATES)

# Which states an attempt may move *from* into each target. Paid never moves back to a failure:
# a late "fail" callback or a stale answer changes nothing but the log.
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    S.PENDING: (S.CREATED, S.REDIRECTED, S.UNKNOWN),
    S.AUTHORIZED: (*OPEN, *FAILED),
    S.PAID: (*OPEN, *FAILED, S.AUTHORIZED),
    S.DECLINED: OPEN,
    S.CANCELLED: OPEN,
    S.EXPIRED: OPEN,
    S.VOIDED: (*OPEN, S.AUTHORIZED),
    S.MISMATCH: (*OPEN, *FAILED),
    S.PARTIALLY_REFUNDED: (S.PAID, S.PARTIALLY_REFUNDED),
    S.REFUNDED: (S.PAID, S.PARTIALLY_REFUNDED),
}
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


class PaymentNotStarted(Exception):
    """The gateway did not register the payment. ``unknown`` when we could not hear its answer."""

    def __init__(self, message: str, unknown: bool):
        super().__init__(message)
        self.unknown = unknown


class EvidenceLog:
    """A :class:`~storefront.gateways.base.Journal` that keeps records until they are saved
    against their attempt (a callback is read before we know which attempt it is for)."""

    def __init__(self):
        self.records: list[tuple[str, str, str]] = []

    def record(self, kind: str, summary: str, detail: str = "") -> None:
        self.records.append((kind, summary[:300], detail))

    def save(self, attempt_id: int) -> None:
        for kind, summary, detail in self.records:
            db.session.add(
                PaymentEvent(attempt_id=attempt_id, kind=kind, summary=summary, detail=detail)
            )
        self.records.clear()


def attempt_ref(attempt: PaymentAttempt) -> AttemptRef:
    return AttemptRef(
        reference=attempt.reference,
        gateway_id=attempt.gateway_id,
        amount=attempt.amount,
        currency=attempt.currency,
        captured=attempt.captured,
        refunded=attempt.refunded,
        data=attempt.gateway_data,
    )


# Starting ---------------------------------------------------------------------------------
def start_payment(order: Order, gateway_name: str) -> PaymentAttempt:
    """Create a new attempt for ``order`` and register it with the gateway.

    The attempt row is committed *before* the gateway is called, and the gateway's id and
    redirect URL are stored the moment it answers, so no registration is ever forgotten.

    :raise PaymentNotStarted: the gateway refused, or its answer was lost (``unknown``).
    """
    gateway = get_gateway(gateway_name)
    attempt = _new_attempt(order, gateway)
    log = EvidenceLog()
    try:
        redirect = gateway.start(_payment_request(order, attempt), log)
    except GatewayRefused as refused:
        _finish_start(attempt, log, S.FAILED_TO_START, message=str(refused)[:300])
        raise PaymentNotStarted(str(refused), unknown=False) from refused
    except GatewayError as lost:
        # The gateway may have registered it without our hearing: unknown, not failed.
        _finish_start(attempt, log, S.UNKNOWN, message="")
        raise PaymentNotStarted(str(lost), unknown=True) from lost
    _finish_start(
        attempt,
        log,
        S.REDIRECTED,
        gateway_id=redirect.gateway_id,
        redirect_url=redirect.url,
        gateway_data_json=json.dumps(dict(redirect.data)),
    )
    return attempt


def _new_attempt(order: Order, gateway) -> PaymentAttempt:
    seq = (
        db.session.execute(
            select(func.max(PaymentAttempt.seq)).where(PaymentAttempt.order_id == order.id)
        ).scalar()
        or 0
    ) + 1
    try:
        reference = gateway.reference_for(order.number, seq)
    except ValueError as exc:  # the gateway's id format has no room for another attempt
        raise PaymentNotStarted(str(exc), unknown=False) from exc
    attempt = PaymentAttempt(
        order_id=order.id,
        seq=seq,
        gateway=gateway.name,
        reference=reference,
        token=orders.new_token(),
        amount=order.total,
        currency=order.currency,
    )
    db.session.add(attempt)
    db.session.commit()
    return attempt


def _finish_start(attempt: PaymentAttempt, log: EvidenceLog, state: str, **values) -> None:
    log.save(attempt.id)
    db.session.execute(
        update(PaymentAttempt)
        .where(PaymentAttempt.id == attempt.id, PaymentAttempt.state == S.CREATED)
        .values(state=state, updated_at=now_utc(), **values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    db.session.refresh(attempt)


def _payment_request(order: Order, attempt: PaymentAttempt) -> PaymentRequest:
    public = current_app.config["PUBLIC_URL"]
    return_url = public + url_for(
        "returns.browser_return", gateway=attempt.gateway, token=attempt.token
    )
    callbacks = {
        "callback": public + url_for("callbacks.rbs_callback"),
        **{
            kind: public + url_for("callbacks.altapay_callback", kind=kind)
            for kind in ("ok", "fail", "open", "notification")
        },
        "verify_order": public + url_for("callbacks.altapay_verify_order"),
    }
    if current_app.config["ALTAPAY_PAYMENT_PAGE"]:
        callbacks["form"] = public + url_for("callbacks.altapay_payment_page")
    return PaymentRequest(
        reference=attempt.reference,
        order_number=order.number,
        amount=attempt.amount,
        currency=attempt.currency,
        description=f"Order {order.number}",
        email=order.email,
        customer_name=order.name,
        country=order.country,
        language="en",
        lines=tuple(Line(line.name, line.quantity, line.unit_price) for line in order.lines),
        return_url=return_url,
        fail_url=return_url,
        callback_urls=callbacks,
    )


# Settling ---------------------------------------------------------------------------------
def find_attempt(gateway: str, reference: str | None, gateway_id: str | None):
    """The attempt a notice names. When it gives both our reference and the gateway's id, both
    must belong to the same attempt: a notice mixing two payments' ids names neither."""
    if not reference and not gateway_id:
        return None
    query = select(PaymentAttempt).where(PaymentAttempt.gateway == gateway)
    if reference:
        query = query.where(PaymentAttempt.reference == reference)
    if gateway_id:
        query = query.where(PaymentAttempt.gateway_id == gateway_id)
    return db.session.execute(query).scalar_one_or_none()


def settle(
    attempt: PaymentAttempt,
    notice: Notice | None = None,
    log: EvidenceLog | None = None,
    source: str = "check",
) -> PaymentAttempt:
    """Learn the gateway's word on ``attempt`` and apply it once. Returns the attempt, fresh."""
    gateway = get_gateway(attempt.gateway)
    log = log or EvidenceLog()
    result = learn(attempt, notice, log)
    if (
        notice is not None
        and notice.result is not None
        and _decide(attempt, result)[0] == S.MISMATCH
    ):
        # A signed body that does not fit the order proves only that someone holds the secret:
        # the gateway's own status query, which no one can forge, decides instead.
        log.record(
            "decision",
            f"{source}: signed result does not fit the order; asking the "
            f"gateway ({_decide(attempt, result)[1]})",
        )
        result = learn(attempt, None, log)
    apply_result(attempt, result, log, source)
    if attempt.state == S.AUTHORIZED and getattr(gateway, "acknowledges", False):
        _acknowledge(attempt, gateway, log)
    mail.drain_after_response()
    return attempt


def learn(attempt: PaymentAttempt, notice: Notice | None, log: EvidenceLog) -> Result:
    """The gateway's answer: the verified signed body if the notice has one, else a query.
    A query that fails is an ``unknown`` result, never a failed payment."""
    if notice is not None and notice.result is not None:
        return notice.result
    try:
        return get_gateway(attempt.gateway).fetch_result(attempt_ref(attempt), log)
    except GatewayError as exc:
        return Result(outcome=Outcome.UNKNOWN, codes=str(exc)[:200])


def _acknowledge(attempt: PaymentAttempt, gateway, log: EvidenceLog) -> None:
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
        result = gateway.acknowledge(attempt_ref(attempt), log)
    except GatewayError as exc:
        result = Result(outcome=Outcome.UNKNOWN, codes=f"acknowledge: {exc}"[:200])
    if result is not None:
        apply_result(attempt, result, log, "acknowledge")
    if result is None or result.outcome is not Outcome.UNKNOWN:
        release_action(attempt)


def claim_action(attempt: PaymentAttempt, action: str) -> bool:
    """Claim ``attempt`` for one gateway action (an Ack, a capture, …): True for one caller only,
    across threads and processes, until ``release_action``."""
    claimed = db.session.execute(
        update(PaymentAttempt)
        .where(PaymentAttempt.id == attempt.id, PaymentAttempt.action.is_(None))
        .values(action=action, action_at=now_utc())
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return claimed == 1


def release_action(attempt: PaymentAttempt) -> None:
    db.session.execute(
        update(PaymentAttempt).where(PaymentAttempt.id == attempt.id).values(action=None)
    )
    db.session.commit()
    db.session.refresh(attempt)


def apply_result(attempt: PaymentAttempt, result: Result, log: EvidenceLog, source: str) -> None:
    """Bind ``result`` to the attempt's order and make the transition it calls for, once."""
    order = orders.lock(attempt.order_id)
    # Under the order's lock, read the attempt as it is now: another request may have moved it
    # (or stored ids in its gateway data) since this one loaded it.
    db.session.refresh(attempt)
    target, reason = _decide(attempt, result)
    log.save(attempt.id)
    moved = False
    if target is not None:
        values = _values_from(result, target, attempt)
        moved = (
            db.session.execute(
                update(PaymentAttempt)
                .where(
                    PaymentAttempt.id == attempt.id, PaymentAttempt.state.in_(ALLOWED_FROM[target])
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            ).rowcount
            == 1
        )
    summary = f"{source}: gateway says {result.outcome} ({result.codes or 'no codes'})"
    if target is None:
        summary += f"; no change: {reason}"
    elif moved:
        summary += f"; {attempt.state} → {target}" + (f" ({reason})" if reason else "")
    else:
        summary += f"; already {attempt.state}, nothing to do"
    db.session.add(PaymentEvent(attempt_id=attempt.id, kind="decision", summary=summary[:300]))
    db.session.execute(
        update(PaymentAttempt).where(PaymentAttempt.id == attempt.id).values(checked_at=now_utc())
    )
    if moved:
        _order_effects(order, attempt, target, reason)
    db.session.commit()
    db.session.refresh(attempt)


def _decide(attempt: PaymentAttempt, result: Result) -> tuple[str | None, str]:
    """The attempt state ``result`` calls for (None: no change), and why."""
    if result.outcome is Outcome.UNKNOWN:
        return None, "the gateway's answer could not be had"
    if result.gateway_id and attempt.gateway_id and result.gateway_id != attempt.gateway_id:
        return _mismatch(result, "the answer is for another payment")
    if result.reference and result.reference != attempt.reference:
        return _mismatch(result, "the answer is for another order number")
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


def _mismatch(result: Result, reason: str) -> tuple[str | None, str]:
    # Money that arrived for something that is not this payment goes to the operator; any other
    # answer about a different payment is simply not ours to apply.
    return (S.MISMATCH, reason) if result.outcome in MONEY_IN else (None, reason)


def _values_from(result: Result, target: str, attempt: PaymentAttempt) -> dict:
    values = {"state": target, "updated_at": now_utc()}
    if target in (S.PAID, S.AUTHORIZED):
        values["authorized"] = result.amount or attempt.amount
    if target == S.PAID:
        values["captured"] = result.captured if result.captured else (result.amount or 0)
    if result.refunded is not None:
        values["refunded"] = result.refunded
    if result.masked_card:
        values["masked_card"] = result.masked_card
    if result.gateway_ref:
        values["gateway_ref"] = result.gateway_ref
    if result.message or target in FAILED:
        values["message"] = (result.message or "The payment was not completed.")[:300]
    if result.data:
        values["gateway_data_json"] = json.dumps({**attempt.gateway_data, **result.data})
    return values


def _order_effects(order: Order, attempt: PaymentAttempt, target: str, reason: str) -> None:
    gateway = get_gateway(attempt.gateway)
    ref = f"payment {attempt.reference}"
    if target == S.PAID:
        if not orders.transition(
            order,
            (OrderState.PENDING_PAYMENT, OrderState.AUTHORIZED),
            OrderState.PAID,
            f"{ref} captured",
        ):
            _late_money(order, ref)
    elif target == S.AUTHORIZED and not getattr(gateway, "acknowledges", False):
        if not orders.transition(
            order,
            (OrderState.PENDING_PAYMENT,),
            OrderState.AUTHORIZED,
            f"{ref} authorized; to be captured",
        ):
            _late_money(order, ref)
    elif target == S.MISMATCH:
        orders.transition(
            order,
            (OrderState.PENDING_PAYMENT, OrderState.EXPIRED),
            OrderState.ON_HOLD,
            f"{ref}: {reason}",
        )
    elif target == S.VOIDED:
        orders.transition(
            order, (OrderState.AUTHORIZED,), OrderState.CANCELLED, f"{ref} voided; stock released"
        )
    elif target in (S.REFUNDED, S.PARTIALLY_REFUNDED):
        to = OrderState.REFUNDED if target == S.REFUNDED else OrderState.PARTIALLY_REFUNDED
        orders.transition(
            order,
            (OrderState.PAID, OrderState.PARTIALLY_REFUNDED),
            to,
            f"{ref} {target.replace('_', ' ')}",
        )


def _late_money(order: Order, ref: str) -> None:
    if order.state == OrderState.EXPIRED:
        orders.transition(
            order,
            (OrderState.EXPIRED,),
            OrderState.ON_HOLD,
            f"{ref} paid after the order expired and its stock was released",
        )
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
    claimed = db.session.execute(
        update(PaymentAttempt)
        .where(
            PaymentAttempt.id == attempt.id,
            or_(PaymentAttempt.checked_at.is_(None), PaymentAttempt.checked_at < cutoff),
        )
        .values(checked_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return claimed == 1


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
