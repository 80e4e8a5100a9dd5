"""The operator's actions on a payment: capture, void, refund — on every gateway.

Each action is claimed on the attempt with a conditional update (``action IS NULL``), so a
double click or a second operator makes one gateway call, not two. The gateway's answer goes
through ``apply_result`` like any other, and its amounts are the ones recorded. A lost answer
leaves the claim in place and the outcome to the reconciler: nothing is assumed either way.
"""

from __future__ import annotations

from flask import current_app

from storefront.extensions import db
from storefront.gateways import configured, get_gateway
from storefront.gateways.base import EventKind, GatewayError, GatewayRefused, Journal, Outcome
from storefront.money import format_money
from storefront.orders import mail
from storefront.payments import evidence
from storefront.payments.models import Actor, AttemptState, Cause, PaymentAttempt
from storefront.payments.settle import (
    apply_result,
    attempt_ref,
    claim_action,
    learn,
    release_action,
)

RECONCILER = Cause(Actor.RECONCILER, "reconciler")


class ActionRefused(Exception):
    """The action is not possible now; the message is for the operator."""


class ActionUnknown(Exception):
    """The gateway's answer was lost; the reconciler will find out what happened."""


def capturable(attempt: PaymentAttempt) -> int:
    return attempt.authorized - attempt.captured if attempt.state == AttemptState.AUTHORIZED else 0


CAPTURED_STATES = (AttemptState.PAID, AttemptState.PARTIALLY_REFUNDED)


def held(attempt: PaymentAttempt) -> int:
    """What of the authorised amount is still reserved on the customer's card: all of it not
    captured while the payment is held; after a partial capture, the rest, where the gateway
    keeps it (``Gateway.keeps_rest``) and until it is captured or released."""
    if attempt.state == AttemptState.AUTHORIZED:
        return capturable(attempt)
    gateway = configured(attempt.gateway)
    if attempt.state not in CAPTURED_STATES or gateway is None or not gateway.keeps_rest:
        return 0
    return max(attempt.authorized - attempt.captured - attempt.released, 0)


def rest_not_held(attempt: PaymentAttempt) -> int:
    """What a partial capture left uncaptured that the gateway does not keep for the shop."""
    if attempt.state not in CAPTURED_STATES:
        return 0
    return max(attempt.authorized - attempt.captured - attempt.released - held(attempt), 0)


def more_capturable(attempt: PaymentAttempt) -> int:
    """What a further capture may take of a partly captured payment: the rest still held,
    where the gateway takes a second capture, and before any refund."""
    gateway = configured(attempt.gateway)
    if attempt.state != AttemptState.PAID or gateway is None or not gateway.captures_more:
        return 0
    return held(attempt)


def releasable(attempt: PaymentAttempt) -> int:
    """What the gateway may give back to the card alone of a partly captured payment."""
    gateway = configured(attempt.gateway)
    if attempt.state not in CAPTURED_STATES or gateway is None or not gateway.releases_rest:
        return 0
    return held(attempt)


def refundable(attempt: PaymentAttempt) -> int:
    if attempt.state not in (AttemptState.PAID, AttemptState.PARTIALLY_REFUNDED):
        return 0
    return attempt.captured - attempt.refunded


def capture(attempt: PaymentAttempt, amount: int, operator: str) -> PaymentAttempt:
    """Capture ``amount`` (minor units) of a held payment."""

    def allowed(current: PaymentAttempt) -> None:
        if not 0 < amount <= capturable(current):
            limit = _money(capturable(current), current)
            raise ActionRefused(f"Only up to {limit} can be captured.")
        gateway = configured(current.gateway)
        if gateway is not None and not gateway.partial_capture and amount != capturable(current):
            # The shop's own refusal, before any call: never put on the gateway.
            raise ActionRefused(
                f"{gateway.title} confirms the whole held amount "
                f"({_money(capturable(current), current)}) or nothing; part of it cannot be taken."
            )

    return _run(
        attempt,
        f"capture:{amount}",
        operator,
        allowed,
        lambda gateway, ref, log: gateway.capture(ref, amount, log),
    )


def capture_more(
    attempt: PaymentAttempt, amount: int, operator: str, seen: int | None = None
) -> PaymentAttempt:
    """Capture ``amount`` more of what a partial capture left held. ``seen``: the amount
    captured as the operator saw it; when more was captured since (the first of a double
    click, another operator), nothing is captured."""

    def allowed(current: PaymentAttempt) -> None:
        if seen is not None and current.captured != seen:
            raise ActionRefused(
                f"Since the page was shown, {_money(current.captured, current)} in all has been "
                "captured: nothing more was captured. Check the amount and try again."
            )
        if not 0 < amount <= more_capturable(current):
            # Refused here, before any call: the gateway would refuse it too.
            limit = _money(more_capturable(current), current)
            raise ActionRefused(
                f"Capturing more than is still held is impossible: at most {limit} can still "
                "be captured."
            )

    return _run(
        attempt,
        f"capture-more:{amount}",
        operator,
        allowed,
        lambda gateway, ref, log: gateway.capture(ref, amount, log),
    )


def release_rest(attempt: PaymentAttempt, operator: str) -> PaymentAttempt:
    """Give back to the card what a partial capture left held; the capture stays."""

    def allowed(current: PaymentAttempt) -> None:
        if releasable(current) <= 0:
            raise ActionRefused("Nothing of this payment is held any more: nothing to release.")

    return _run(
        attempt,
        "release-rest",
        operator,
        allowed,
        lambda gateway, ref, log: gateway.release_rest(ref, log),
    )


def reversible(attempt: PaymentAttempt) -> bool:
    """Whether a captured payment may still be cancelled whole at its gateway (before the
    gateway's settlement; the gateway itself refuses once its time limit passed)."""
    gateway = configured(attempt.gateway)
    return bool(
        gateway is not None
        and gateway.voids_captured
        and attempt.state == AttemptState.PAID
        and attempt.refunded == 0
    )


def void(attempt: PaymentAttempt, operator: str) -> PaymentAttempt:
    """Release a held payment in full, or cancel a capture the gateway can still reverse."""

    def allowed(current: PaymentAttempt) -> None:
        if current.state != AttemptState.AUTHORIZED and not reversible(current):
            raise ActionRefused("Only a held (authorised) payment can be voided.")

    return _run(
        attempt, "void", operator, allowed, lambda gateway, ref, log: gateway.void(ref, log)
    )


def refund(attempt: PaymentAttempt, amount: int, operator: str) -> PaymentAttempt:
    """Refund ``amount`` (minor units) of a captured payment; never more than was captured."""
    gateway = get_gateway(attempt.gateway)
    if not gateway.supports_refund:
        raise ActionRefused(
            f"{gateway.title} has no refund in its protocol: refund it from the "
            "gateway's own back office."
        )

    def allowed(current: PaymentAttempt) -> None:
        if not 0 < amount <= refundable(current):
            raise ActionRefused(
                "Refunding more than was captured is impossible: at most "
                f"{_money(refundable(current), current)} can be refunded."
            )

    return _run(
        attempt,
        f"refund:{amount}",
        operator,
        allowed,
        lambda gateway, ref, log: gateway.refund(ref, amount, log),
    )


def _money(amount: int, attempt: PaymentAttempt) -> str:
    return format_money(amount, attempt.currency, current_app.config["LOCALE"])


def _run(attempt: PaymentAttempt, action: str, operator: str, allowed, call) -> PaymentAttempt:
    allowed(attempt)  # refuse at once what the page already shows is impossible
    if not claim_action(attempt, action):
        raise ActionRefused("Another action on this payment is under way. Reload the page.")
    # Judge again under the claim: a capture or refund may have finished just before it.
    db.session.refresh(attempt)
    try:
        allowed(attempt)
    except ActionRefused:
        release_action(attempt)
        raise
    gateway = get_gateway(attempt.gateway)
    cause = Cause(Actor.STAFF, f"back office {action}", operator)
    journal = Journal()
    evidence.add(attempt.id, EventKind.ACTION, f"{operator} asked for {action}", cause)
    try:
        result = call(gateway, attempt_ref(attempt), journal)
    except GatewayRefused as refused:
        if refused.result is not None:  # the gateway's own amounts, read after it refused
            apply_result(attempt, refused.result, journal, cause)
        _record(attempt, journal, cause, f"{action} refused by the gateway: {refused}")
        release_action(attempt)
        raise ActionRefused(f"The gateway refused: {refused}") from refused
    except GatewayError as lost:
        # The claim stays: the action may have happened. The reconciler asks the gateway.
        _record(
            attempt,
            journal,
            cause,
            f"{action}: no answer from the gateway ({lost}); outcome unknown",
        )
        raise ActionUnknown(str(lost)) from lost
    apply_result(attempt, result, journal, cause)
    _record(attempt, journal, cause, f"{action} done")
    release_action(attempt)
    # A refund's or a cancellation's mail, queued by the move.
    mail.drain_after_response(attempt.order_id)
    return attempt


def _record(attempt: PaymentAttempt, journal: Journal, cause: Cause, summary: str) -> None:
    evidence.keep(journal, attempt.id, cause)
    evidence.add(attempt.id, EventKind.ACTION, summary, cause)
    db.session.commit()


def resolve_unknown_action(attempt: PaymentAttempt, cause: Cause = RECONCILER) -> bool:
    """Learn the state a lost back-office call left, then free the attempt. False (and the
    claim kept) while the gateway still cannot be asked."""
    journal = Journal()
    result = learn(attempt, None, journal)
    if result.outcome is Outcome.UNKNOWN:
        _record(
            attempt, journal, cause, f"{attempt.action}: gateway still silent; asking again later"
        )
        return False
    apply_result(
        attempt,
        result,
        journal,
        Cause(cause.actor, f"{cause.what} after lost {attempt.action}", cause.name),
    )
    _record(attempt, journal, cause, f"{attempt.action}: outcome taken from the gateway's status")
    release_action(attempt)
    return True
