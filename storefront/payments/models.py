"""Payment attempts (one per hand-off to a gateway), their state machine as data, and the
evidence of every exchange, typed by kind and by who caused it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import DateTime, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storefront.extensions import Model
from storefront.gateways.base import EventKind
from storefront.timeutil import now_utc

if TYPE_CHECKING:
    from storefront.orders.models import Order


class AttemptState(StrEnum):
    CREATED = "created"  # row written, gateway not yet asked
    REDIRECTED = "redirected"  # the gateway registered it; the customer was sent to its page
    PENDING = "pending"  # the gateway says: not decided yet
    UNKNOWN = "unknown"  # we could not learn the gateway's answer (timeout, 5xx, garbage)
    AUTHORIZED = "authorized"  # held, to be captured
    PAID = "paid"  # captured
    DECLINED = "declined"
    CANCELLED = "cancelled"  # by the customer on the gateway's page
    EXPIRED = "expired"
    FAILED_TO_START = "failed_to_start"  # the gateway refused to register it
    VOIDED = "voided"
    MISMATCH = "mismatch"  # the gateway's answer is not for this order/amount/currency
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"


OPEN_STATES = (
    AttemptState.CREATED,
    AttemptState.REDIRECTED,
    AttemptState.PENDING,
    AttemptState.UNKNOWN,
)
FAILED_STATES = (
    AttemptState.DECLINED,
    AttemptState.CANCELLED,
    AttemptState.EXPIRED,
    AttemptState.FAILED_TO_START,
)
_S = AttemptState
# The attempt's state machine: which states it may move *from* into each target. Paid never
# moves back to a failure: a late "fail" callback or a stale answer changes nothing but the log.
ALLOWED_FROM: dict[AttemptState, tuple[AttemptState, ...]] = {
    _S.PENDING: (_S.CREATED, _S.REDIRECTED, _S.UNKNOWN),
    _S.AUTHORIZED: (*OPEN_STATES, *FAILED_STATES),
    _S.PAID: (*OPEN_STATES, *FAILED_STATES, _S.AUTHORIZED),
    _S.DECLINED: OPEN_STATES,
    _S.CANCELLED: OPEN_STATES,
    _S.EXPIRED: OPEN_STATES,
    # A capture the gateway cancelled before settlement (BPC/RBS reverse.do) is voided too.
    _S.VOIDED: (*OPEN_STATES, _S.AUTHORIZED, _S.PAID),
    _S.MISMATCH: (*OPEN_STATES, *FAILED_STATES),
    _S.PARTIALLY_REFUNDED: (_S.PAID, _S.PARTIALLY_REFUNDED),
    _S.REFUNDED: (_S.PAID, _S.PARTIALLY_REFUNDED),
}


class Actor(StrEnum):
    """Who caused a piece of evidence."""

    GATEWAY = "gateway"  # a callback, or the gateway's answer to a call it prompted
    CUSTOMER = "customer"  # the customer's browser: placing, returning, looking again
    RECONCILER = "reconciler"  # the background check of open payments
    STAFF = "staff"  # a signed-in operator (``Cause.name`` says who)
    SHOP = "shop"  # the shop itself, on no one's request


@dataclass(frozen=True)
class Cause:
    """Why the shop is talking to the gateway about a payment: who, and through what."""

    actor: Actor
    what: str  # "browser return", "callback ok", "pending page", "back office capture:500" …
    name: str = ""  # the operator's email, for Actor.STAFF

    def __str__(self) -> str:
        return self.what


class PaymentAttempt(Model):
    __table_args__ = (
        UniqueConstraint("order_id", "seq"),
        UniqueConstraint("gateway", "reference"),
        Index("ix_payment_attempt_gateway_gateway_id", "gateway", "gateway_id", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("order.id"), index=True)
    seq: Mapped[int]  # 1, 2, … per order: "try again" makes a new attempt
    gateway: Mapped[str] = mapped_column(String(20))
    # Our id for this attempt at the gateway (RBS orderNumber, AltaPay shop_orderid, InterPay
    # REQUESTID): unique per attempt, so a retried registration can never make a second payment.
    reference: Mapped[str] = mapped_column(String(40))
    # Unguessable key of this attempt's return URL.
    token: Mapped[str] = mapped_column(String(64), unique=True)
    gateway_id: Mapped[str | None] = mapped_column(
        String(64)
    )  # mdOrder / PaymentRequestId / SECUREID
    redirect_url: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(24), default=AttemptState.CREATED, index=True)

    amount: Mapped[int]  # minor units, frozen from the order
    currency: Mapped[str] = mapped_column(String(3))
    authorized: Mapped[int] = mapped_column(default=0)
    captured: Mapped[int] = mapped_column(default=0)
    refunded: Mapped[int] = mapped_column(default=0)
    # What of the hold the gateway gave back to the card without capturing it (the rest of a
    # partial capture, released): no longer held, never to be captured.
    released: Mapped[int] = mapped_column(default=0)

    masked_card: Mapped[str] = mapped_column(String(32), default="")
    gateway_ref: Mapped[str] = mapped_column(String(64), default="")  # approval code / transaction
    message: Mapped[str] = mapped_column(String(300), default="")  # safe to show the customer
    # Adapter-specific ids the back office needs later (AltaPay transaction id, InterPay REFNUM).
    gateway_data_json: Mapped[str] = mapped_column(Text, default="{}")

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=now_utc, onupdate=now_utc
    )
    returned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A back-office action under way ("capture:500", "void", "refund:300"), claimed with a
    # conditional update so that a double click never calls the gateway twice. It stays set when
    # the gateway's answer was lost, until the reconciler learns the outcome.
    action: Mapped[str | None] = mapped_column(String(40))
    action_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The reconciler's schedule (payments.reconciler): when it next asks the gateway about this
    # attempt (None: when its age says so), and how many of its checks in a row found the
    # attempt in its current state (0: none yet), which picks the wait from the state's list.
    next_check_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    check_streak: Mapped[int] = mapped_column(default=0)

    order: Mapped[Order] = relationship(back_populates="attempts")
    events: Mapped[list[PaymentEvent]] = relationship(
        back_populates="attempt", order_by="PaymentEvent.id"
    )

    @property
    def gateway_data(self) -> dict:
        return json.loads(self.gateway_data_json or "{}")

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def has_failed(self) -> bool:
        return self.state in FAILED_STATES


class PaymentEvent(Model):
    """Evidence: one exchange with a gateway or one decision about an attempt, secrets redacted."""

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("payment_attempt.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now_utc)
    kind: Mapped[EventKind] = mapped_column(String(20))
    summary: Mapped[str] = mapped_column(String(300))
    detail: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[Actor] = mapped_column(String(20), default=Actor.SHOP)
    actor_name: Mapped[str] = mapped_column(String(254), default="")  # the operator's email

    attempt: Mapped[PaymentAttempt] = relationship(back_populates="events")
