"""What arrives from outside about a payment: the browser's return, the gateway's callbacks,
AltaPay's last check before it takes the money, and a pending page looking again.

Each function takes what the request carried, records the evidence, settles through
``settle`` and commits; the views only parse the request and render what comes back.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import abort, current_app
from sqlalchemy import select

from storefront.extensions import db
from storefront.gateways import configured
from storefront.gateways.base import BadNotice, EventKind, Journal, Outcome
from storefront.money import currency_info, from_major
from storefront.ops import observe
from storefront.orders.models import Order, OrderState
from storefront.orders.service import is_token
from storefront.payments import evidence
from storefront.payments.models import Actor, AttemptState, Cause, PaymentAttempt
from storefront.payments.settle import (
    claim_check,
    due_for_check,
    find_attempt,
    mark_returned,
    may_ask,
    settle,
)

RETURN = Cause(Actor.CUSTOMER, "browser return")
PENDING_PAGE = Cause(Actor.CUSTOMER, "pending page")


def receive_return(gateway: str, token: str, args: Mapping[str, str]) -> Order:
    """The customer's browser is back from the gateway's page: ask the gateway, settle, and
    give the order whose page to show. Nothing the browser brings decides anything.

    :raise 404: no attempt of this gateway has this token.
    :raise 400: the return's parameters are malformed or name another payment.
    """
    attempt = _attempt_by_token(token)
    if attempt is None or attempt.gateway != gateway:
        abort(404)
    observe.attempt(attempt)  # the request's log lines name its order and attempt
    adapter = configured(gateway)
    if adapter is None:
        # The shop no longer speaks this gateway: the order as it stands; the operator settles it.
        mark_returned(attempt)
        return attempt.order
    try:
        notice = adapter.parse_return(args)
    except BadNotice as bad:
        _refused(attempt, f"browser return refused: {bad}", RETURN, _query(args))
        abort(400, str(bad))
    if notice.gateway_id and attempt.gateway_id and notice.gateway_id != attempt.gateway_id:
        _refused(
            attempt,
            f"browser return refused: names payment {notice.gateway_id!r}, not this one",
            RETURN,
            _query(args),
        )
        abort(400, "This link does not belong to this payment.")
    mark_returned(attempt)
    # Returns are triggers, and a browser (or someone holding the link) can send many: the
    # gateway is asked at most once per STATUS_RECHECK_SECONDS, as pending pages ask, and
    # never against its own rules; the others are shown the order as it stands.
    spacing = float(current_app.config["STATUS_RECHECK_SECONDS"])
    if may_ask(attempt, adapter) and claim_check(attempt, spacing):
        settle(attempt, RETURN, notice)
    return attempt.order


class CallbackRefused(Exception):
    """A callback we did not accept (malformed, or the checksum is missing or wrong). The
    message is safe to show; ``attempt`` is the payment it named, where it named one."""

    def __init__(self, message: str, attempt: PaymentAttempt | None):
        super().__init__(message)
        self.attempt = attempt


def receive_callback(
    gateway: str, kind: str, form: Mapping[str, str]
) -> tuple[PaymentAttempt, bool]:
    """A gateway called one of our server-to-server pages: authenticate it, settle, and give
    the attempt it was about, and whether the shop now knows the gateway's word (False: the
    status query failed, and the gateway should call again). A refused callback changes
    nothing but the evidence.

    :raise 404: the gateway is not ours, it has no such page, or no payment has these ids.
    :raise CallbackRefused: malformed, or the checksum is missing or wrong.
    """
    adapter = configured(gateway)
    if adapter is None or kind not in adapter.callback_kinds:
        abort(404)
    cause = Cause(Actor.GATEWAY, f"callback {kind}")
    journal = Journal()
    try:
        notice = adapter.parse_callback(kind, form, journal)
    except BadNotice as bad:
        attempt = find_attempt(gateway, bad.reference, bad.gateway_id)
        if attempt is not None:
            evidence.keep(journal, attempt.id, cause)
            _refused(attempt, f"callback {kind} refused: {bad}", cause)
        raise CallbackRefused(str(bad), attempt) from bad
    attempt = find_attempt(gateway, notice.reference, notice.gateway_id)
    if attempt is None:
        abort(404)
    observe.attempt(attempt)
    if kind in adapter.relayed_kinds and attempt.returned_at is None:
        # The gateway shows our answer to the customer: they are back from its page, and the
        # order's page may ask the gateway when they press "Check again".
        mark_returned(attempt)
    result = settle(attempt, cause, notice, journal)
    return attempt, result.outcome is not Outcome.UNKNOWN


def verify_order(form: Mapping[str, str]) -> str:
    """AltaPay's ``callback_verify_order``: exactly ``OKAY`` while the attempt is its order's
    current one and the order is still payable for this amount and currency; any other answer
    makes the gateway stop and show it to the customer. The call is kept as evidence.

    :raise 400: the amount or the currency is not one (the gateway always sends both).
    """
    try:
        currency = currency_info(form.get("currency", "")).code
        amount = from_major(form.get("amount", ""), currency)
    except ValueError:
        abort(400, "The amount or the currency is malformed.")
    attempt = find_attempt("altapay", form.get("shop_orderid"), None)
    if attempt is None:
        return "This order is unknown to the shop."
    order = attempt.order
    if not order.is_payable or order.latest_attempt.id != attempt.id:
        answer = "This order can no longer be paid. Please return to the shop."
    elif (amount, currency) != (attempt.amount, attempt.currency):
        answer = "The amount does not match the order. Please return to the shop."
    else:
        answer = "OKAY"
    cause = Cause(Actor.GATEWAY, "callback verify_order")
    shown = "\n".join(f"{k}={v}" for k, v in sorted(form.items()) if k != "checksum")
    evidence.add(attempt.id, EventKind.CALLBACK, "callback verify_order", cause, shown[:4000])
    evidence.add(attempt.id, EventKind.DECISION, f"verify_order answered: {answer}", cause)
    db.session.commit()
    return answer


def check_if_due(order: Order) -> None:
    """A pending page asks the gateway again, at most every few seconds per payment."""
    attempt = order.latest_attempt
    if order.state != OrderState.PENDING_PAYMENT or attempt is None:
        return
    if attempt.state not in (AttemptState.PENDING, AttemptState.UNKNOWN, AttemptState.REDIRECTED):
        return
    if attempt.gateway_id is None or attempt.returned_at is None:
        return  # the customer has not come back from the gateway: nothing to ask yet
    adapter = configured(attempt.gateway)
    if adapter is None:
        return  # no longer configured: the operator settles it from the gateway's back office
    spacing = float(current_app.config["STATUS_RECHECK_SECONDS"])
    if not may_ask(attempt, adapter):
        return
    if due_for_check(attempt, spacing) and claim_check(attempt, spacing):
        settle(attempt, PENDING_PAGE)
        db.session.refresh(order)


def _attempt_by_token(token: str) -> PaymentAttempt | None:
    if not is_token(token):
        return None
    return db.session.execute(
        select(PaymentAttempt).where(PaymentAttempt.token == token)
    ).scalar_one_or_none()


def _refused(attempt: PaymentAttempt, why: str, cause: Cause, detail: str = "") -> None:
    evidence.add(attempt.id, EventKind.REFUSED, why, cause, detail[:2000])
    db.session.commit()


def _query(args: Mapping[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in args.items())
