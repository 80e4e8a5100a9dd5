"""Orders: what the customer bought, frozen at placement, and the history of its state."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import DateTime, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storefront.extensions import Model
from storefront.orders import vat
from storefront.timeutil import now_utc

if TYPE_CHECKING:  # for the type checker only: payments imports orders at run time
    from storefront.payments.models import PaymentAttempt


class OrderState(StrEnum):
    PENDING_PAYMENT = "pending_payment"  # placed, stock reserved, waiting for the gateway's word
    AUTHORIZED = "authorized"  # the money is held (two-phase); the operator captures it
    PAID = "paid"
    ON_HOLD = "on_hold"  # the gateway's answer did not match the order: the operator decides
    EXPIRED = "expired"  # never paid within the payment window; stock released
    CANCELLED = "cancelled"  # by the operator: unpaid, or its hold voided; stock released
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


_O = OrderState
# The order's state machine: the states each state may move to. ``orders.service.transition``
# is the only way an order changes state, and it refuses any move not listed here.
ORDER_PIPELINE: dict[OrderState, tuple[OrderState, ...]] = {
    # CANCELLED: the operator cancels an order the customer never paid.
    _O.PENDING_PAYMENT: (_O.AUTHORIZED, _O.PAID, _O.ON_HOLD, _O.EXPIRED, _O.CANCELLED),
    _O.AUTHORIZED: (_O.PAID, _O.CANCELLED),
    # CANCELLED: a capture reversed at the gateway before its settlement (BPC/RBS).
    _O.PAID: (_O.PARTIALLY_REFUNDED, _O.REFUNDED, _O.CANCELLED),
    # A second partial refund is a move too: it is recorded in the history.
    _O.PARTIALLY_REFUNDED: (_O.PARTIALLY_REFUNDED, _O.REFUNDED),
    # Money that arrives after the window closed and the stock went back: a person decides.
    _O.EXPIRED: (_O.ON_HOLD,),
    _O.ON_HOLD: (),
    # Money that arrives after the operator cancelled the order: the same, a person decides.
    _O.CANCELLED: (_O.ON_HOLD,),
    _O.REFUNDED: (),
}


# The mail each move sends, once (see ``orders.service.transition``). A new kind of mail is a
# template pair ``email/<kind>.txt`` / ``.html``, a subject in ``orders.mail.SUBJECTS`` and,
# where a move sends it, an entry here. Kinds in ``REPEATABLE_MAILS`` may go more than once per
# order (a second partial refund): each sending is keyed by its sequence number. A
# confirmation sent again from the admin is ``order_confirmation:resend:<n>`` (see
# ``admin.order_service``): a kind of its own, so the move's confirmation stays once.
ORDER_MAILS: dict[OrderState, str] = {
    _O.PAID: "order_confirmation",
    _O.AUTHORIZED: "order_confirmation",
    _O.PARTIALLY_REFUNDED: "refunded",
    _O.REFUNDED: "refunded",
    _O.CANCELLED: "order_cancelled",
    _O.EXPIRED: "order_expired",
}
# Mails sent by no move of the order: ``order_received`` on placement
# (``orders.service.place_order``), ``payment_failed:<attempt>`` when an attempt of an unpaid
# order is declined or cancelled (``payments.settle``), ``dispatched`` from the admin.
PLACED_MAIL = "order_received"
REPEATABLE_MAILS = frozenset({"refunded", "payment_failed"})


def mail_kind(key: str) -> str:
    """The template of an outbox message: its key without the sequence (``refunded:2``)."""
    return key.partition(":")[0]


def allowed_sources(to: OrderState) -> tuple[OrderState, ...]:
    """The states from which an order may move to ``to``."""
    return tuple(state for state, targets in ORDER_PIPELINE.items() if to in targets)


class Order(Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    # What the customer and the operator quote: random digits, not a count of our sales.
    number: Mapped[str] = mapped_column(String(16), unique=True)
    # The unguessable key of the receipt page (at least 128 random bits): no cookie needed.
    receipt_token: Mapped[str] = mapped_column(String(64), unique=True)
    # One checkout form, one order: a double click or a second tab finds the same order.
    checkout_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(32), default=OrderState.PENDING_PAYMENT, index=True)

    email: Mapped[str] = mapped_column(String(254), index=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300))
    city: Mapped[str] = mapped_column(String(120))
    postcode: Mapped[str] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(2))
    phone: Mapped[str] = mapped_column(String(40), default="", server_default="")  # as typed
    # The billing address when it differs from the delivery one; all "" when it is the same.
    billing_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    billing_address: Mapped[str] = mapped_column(String(300), default="", server_default="")
    billing_city: Mapped[str] = mapped_column(String(120), default="", server_default="")
    billing_postcode: Mapped[str] = mapped_column(String(20), default="", server_default="")
    billing_country: Mapped[str] = mapped_column(String(2), default="", server_default="")
    # The customer's note to the shop, plain text (staff notes are admin.models.OrderNote).
    note: Mapped[str] = mapped_column(Text, default="", server_default="")

    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[int]  # minor units, the sum of the frozen lines and the delivery
    # The delivery chosen, frozen at placement (VAT included, standard rate); "" and 0: none.
    delivery_name: Mapped[str] = mapped_column(String(120), default="", server_default="")
    delivery_price: Mapped[int] = mapped_column(default=0, server_default="0")
    # The customer's language when the order was placed (``"de"``): its mails, and the
    # gateway's payment page, are in it, whenever and by whichever process they are made.
    locale: Mapped[str] = mapped_column(String(16), default="en", server_default="en")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=now_utc, onupdate=now_utc
    )
    # Until then the reserved stock is held for this order's payment.
    payment_due_by: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", order_by="OrderLine.id", cascade="all, delete-orphan"
    )
    taxes: Mapped[list[OrderTax]] = relationship(
        order_by="OrderTax.id", cascade="all, delete-orphan"
    )
    events: Mapped[list[OrderEvent]] = relationship(
        back_populates="order", order_by="OrderEvent.id", cascade="all, delete-orphan"
    )
    attempts: Mapped[list[PaymentAttempt]] = relationship(
        back_populates="order", order_by="PaymentAttempt.seq"
    )

    @property
    def latest_attempt(self):
        return self.attempts[-1] if self.attempts else None

    @property
    def has_billing_address(self) -> bool:
        """Whether the customer gave a billing address other than the delivery one."""
        return bool(self.billing_address)

    @property
    def is_payable(self) -> bool:
        return self.state == OrderState.PENDING_PAYMENT


class OrderLine(Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("order.id"), index=True)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("product.id"))
    name: Mapped[str] = mapped_column(String(200))
    unit_price: Mapped[int]
    quantity: Mapped[int]
    # The product's tax class when the order was placed: the line's VAT rate is the order's
    # ``OrderTax`` row of that class, whatever the product says later.
    tax_class: Mapped[str] = mapped_column(
        String(20), default="standard", server_default="standard"
    )

    order: Mapped[Order] = relationship(back_populates="lines")

    @property
    def total(self) -> int:
        return self.unit_price * self.quantity


class OrderTax(Model):
    """The VAT of one rate in an order's total, computed by ``orders.vat`` when it is placed."""

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("order.id"), index=True)
    tax_class: Mapped[str] = mapped_column(String(20))
    rate: Mapped[int]  # hundredths of a percent
    gross: Mapped[int]  # minor units, VAT included
    vat: Mapped[int]  # minor units

    @property
    def percent(self) -> str:
        """The rate as shown: 2300 is "23 %", 1350 "13.5 %"."""
        return vat.TaxAmount(self.tax_class, self.rate, self.gross, self.vat).percent


class OrderEvent(Model):
    """One change of an order's state, and why."""

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("order.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now_utc)
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")

    order: Mapped[Order] = relationship(back_populates="events")


class OutboxMessage(Model):
    """A message to send once, written in the same transaction as the change that causes it.

    The unique (kind, order) pair makes the write itself exactly-once; the drain after the
    response sends the order's unsent mails, and a crash between commit and send is made good
    by the reconciler's next drain (``mail.drain``).
    """

    __table_args__ = (UniqueConstraint("kind", "order_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[int] = mapped_column(ForeignKey("order.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now_utc)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    tries: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
