"""The adapter interface every gateway family implements: the values it trades in and the
:class:`Gateway` base class.

An adapter translates between the shop's words and one gateway's wire protocol and talks HTTP.
It never touches the database: it returns values, and it reports every exchange to a
:class:`Journal` that the payments service stores as evidence. ``payments.settle`` owns every
state change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar


class Outcome(StrEnum):
    """What the gateway's authoritative answer says about one payment."""

    PAID = "paid"  # captured: the money is ours
    AUTHORIZED = "authorized"  # held, to be captured (two-phase)
    PENDING = "pending"  # the gateway has not decided yet
    DECLINED = "declined"
    CANCELLED = "cancelled"  # the customer gave up on the gateway's page
    EXPIRED = "expired"  # the gateway's session or hold ran out
    VOIDED = "voided"  # an authorization released
    REFUNDED = "refunded"  # all or part of a capture returned (see Result.refunded)
    UNKNOWN = "unknown"  # the gateway's word could not be had or read: never treated as failed


@dataclass(frozen=True)
class Line:
    """One line of the basket, as ``orders.basket`` builds it from the frozen order.

    The lines of a request add up to its amount; where the VAT is known, ``vat`` is the line's
    share of its rate's VAT and the shares add up to the order's VAT per rate.
    """

    name: str
    quantity: int
    unit_amount: int  # minor units, VAT included
    vat_rate: int | None = None  # hundredths of a percent; None: not known, not sent
    vat: int = 0  # minor units, of the whole line
    code: str = ""  # the shop's id of what is sold (a product id, "delivery")
    shipping: bool = False  # the delivery, not goods

    @property
    def amount(self) -> int:
        return self.unit_amount * self.quantity


@dataclass(frozen=True)
class PaymentRequest:
    """Everything an adapter may send when it starts a payment. Amounts in minor units."""

    reference: str  # our unique id for this attempt at the gateway (see Gateway.reference_for)
    order_number: str
    amount: int
    currency: str  # ISO 4217 alphabetic
    description: str
    email: str
    customer_name: str
    country: str  # ISO 3166 alpha-2
    language: str  # the order's language as the shop holds it ("de", "pt_BR"): see page_language
    lines: tuple[Line, ...]
    return_url: str  # absolute: where the browser comes back after paying
    fail_url: str  # absolute: where the browser comes back after failing or cancelling
    # Absolute URLs of the shop's server-to-server pages, by kind: "callback" for BPC/RBS;
    # "ok", "fail", "open", "notification", "verify_order", "form" for AltaPay.
    callback_urls: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AttemptRef:
    """What an adapter knows of an attempt it started: enough to ask about it or act on it."""

    reference: str
    gateway_id: str | None
    amount: int
    currency: str
    captured: int = 0
    refunded: int = 0
    data: Mapping[str, Any] = field(default_factory=dict)  # adapter's own ids (Result.data)


@dataclass(frozen=True)
class Redirect:
    """A registered payment: where to send the customer, and the gateway's id for it."""

    gateway_id: str
    url: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    """The gateway's authoritative word on one payment (or on one back-office action).

    ``reference``/``gateway_id``/``amount``/``currency`` are what the *gateway* says, so that
    ``settle`` can bind them to the order; an adapter never fills them in from our own records.
    """

    outcome: Outcome
    gateway_id: str | None = None
    reference: str | None = None
    amount: int | None = None  # the amount the gateway authorized or charged, minor units
    currency: str | None = None  # ISO 4217 alphabetic
    captured: int | None = None
    refunded: int | None = None
    # What of the hold the gateway says it gave back uncaptured (the rest of a partial capture
    # released); None: the answer does not say.
    released: int | None = None
    masked_card: str = ""
    gateway_ref: str = ""  # approval code or transaction id, for the receipt
    codes: str = ""  # the gateway's own codes, for the evidence log: "orderStatus=2 actionCode=0"
    message: str = ""  # safe to show the customer
    merchant: str | None = None  # the merchant/terminal the gateway says it is for, if it says
    data: Mapping[str, Any] = field(default_factory=dict)  # ids to keep (merged into AttemptRef)


class Trigger(StrEnum):
    RETURN = "return"
    CALLBACK = "callback"


@dataclass(frozen=True)
class Notice:
    """What a browser return or a callback tells us: which attempt, and possibly a signed result.

    Unsigned notices are only a reason to ask the gateway; ``result`` is set only when the
    adapter verified the gateway's signature over it (AltaPay's checksum over the posted xml).
    """

    trigger: Trigger
    reference: str | None = None
    gateway_id: str | None = None
    result: Result | None = None
    kind: str = ""  # the callback page: "ok", "fail", "open", "notification", …
    # What a signed notice without a body says happened, without amounts (BPC/RBS
    # "deposited"): enough to see a repeat of what the shop already holds, never to decide.
    says: Outcome | None = None


class GatewayError(Exception):
    """The gateway's word could not be had or read (timeout, 5xx, garbage): outcome unknown."""


class GatewayRefused(Exception):
    """The gateway answered and said no (bad parameters, credentials, a duplicate).

    ``result`` is the payment's state as the gateway gave it right after refusing, where the
    adapter asked (a refusal can mean that the shop's view of the amounts was stale).
    """

    def __init__(self, message: str, code: str = "", result: Result | None = None):
        super().__init__(message)
        self.code = code
        self.result = result


class BadNotice(ValueError):
    """A return or callback that is malformed or fails authentication. The message is safe.

    ``reference``/``gateway_id`` name the attempt it claims to be about, where they could be
    read, so that the refused notice is still kept in that attempt's evidence.
    """

    def __init__(self, message: str, reference: str | None = None, gateway_id: str | None = None):
        super().__init__(message)
        self.reference = reference
        self.gateway_id = gateway_id


class EventKind(StrEnum):
    """What one piece of a payment's evidence is. Adapters record the first four; the
    payments service adds the rest."""

    REQUEST = "request"  # we sent the gateway a message
    RESPONSE = "response"  # the gateway's answer to it
    ERROR = "error"  # no usable answer (a timeout, a broken connection, a failover)
    CALLBACK = "callback"  # the gateway called one of our server-to-server pages
    RETURN = "return"  # the customer's browser came back from the gateway's page
    REFUSED = "refused"  # a return or callback we did not accept (malformed, bad checksum)
    DECISION = "decision"  # what the shop made of an answer: a transition, or why none
    ACTION = "action"  # an operator's back-office action: asked for, done, refused, lost


@dataclass(frozen=True)
class Exchange:
    kind: EventKind
    summary: str
    detail: str = ""
    # When it happened, not when it was stored: a journal is saved after the call returns.
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


class Journal:
    """Where an adapter reports each exchange, in order. The payments service stores the
    entries against their attempt once it knows which one (a callback is read first)."""

    def __init__(self) -> None:
        self.entries: list[Exchange] = []

    def record(self, kind: EventKind | str, summary: str, detail: str = "") -> None:
        self.entries.append(Exchange(EventKind(kind), summary[:300], detail))


class Gateway:
    """What every adapter is: the interface the payments service calls, with a default for
    each optional trait, so that callers never probe an adapter for what it has.

    Class attributes describe the protocol; an adapter overrides only what differs.
    """

    name: ClassVar[str]  # "rbs", "altapay", "interpay": URLs and settings use it
    title: ClassVar[str]  # the payment method as the admin names it
    processor: ClassVar[str]  # the processor's name, in checkout's small print
    # Settings (without the STOREFRONT_ prefix) holding the gateway's base URL(s), and those
    # that production must have set to real values (their sandbox defaults are refused).
    url_setting: ClassVar[str]
    required_settings: ClassVar[tuple[str, ...]] = ()
    # The kinds of /pay/<name>/callback/<kind> the gateway calls; of those, the ones whose
    # answer it shows the customer (an HTML page), the others get a short plain-text answer.
    callback_kinds: ClassVar[tuple[str, ...]] = ()
    relayed_kinds: ClassVar[tuple[str, ...]] = ()
    has_browser_return: ClassVar[bool] = True
    supports_refund: ClassVar[bool] = True
    # Whether a hold can be captured in part (InterPay's Ack confirms the whole amount or
    # nothing), and the name of the operator's capture button.
    partial_capture: ClassVar[bool] = True
    capture_label: ClassVar[str] = "Capture"
    # Whether ``void`` can also cancel a capture not yet settled (BPC/RBS reverse.do, within
    # the gateway's own time limit), not only release a hold.
    voids_captured: ClassVar[bool] = False
    # What becomes of the rest of a hold after a partial capture: whether the gateway keeps it
    # reserved on the card, may capture it later (a second capture) and may release it alone.
    # Where it does not keep it, ``rest_after_capture`` tells the operator why nothing is held.
    keeps_rest: ClassVar[bool] = False
    captures_more: ClassVar[bool] = False
    releases_rest: ClassVar[bool] = False
    rest_after_capture: ClassVar[str] = (
        "The gateway keeps nothing of the rest after a capture: it cannot be captured later."
    )
    # The reconciler's timing for a customer who never came back (payments.reconciler): the
    # first status query this many seconds after the hand-off (None: the reconciler's own
    # default), and after an undecided answer not again for this long (None: no extra wait).
    first_check_after: ClassVar[float | None] = None
    recheck_pending_after: ClassVar[float | None] = None

    # The merchant or terminal this shop is at the gateway, where the gateway's answers name
    # one: an answer for another merchant is not about our payment (payments.settle).
    merchant: str | None = None

    # True where an approval is final only once we acknowledge it (InterPay's Ack): settle()
    # then acknowledges an authorized payment right after committing it, and the order is paid
    # only on the confirmed capture.
    @property
    def acknowledges(self) -> bool:
        return False

    # The languages the gateway shows its payment page in, as it names them (ISO 639-1); an
    # empty set: any, the gateway falling back to its own default for one it lacks.
    page_languages: ClassVar[frozenset[str]] = frozenset()

    def page_language(self, language: str) -> str | None:
        """What to ask the gateway's page to be in for an order in ``language`` (the shop's
        locale, ``"de"`` or ``"pt_BR"``): its ISO 639-1 part, or None to send none and let the
        gateway choose, where it does not offer that language."""
        code = language.replace("-", "_").split("_", 1)[0].lower()
        if not code or (self.page_languages and code not in self.page_languages):
            return None
        return code

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Gateway:
        raise NotImplementedError

    @classmethod
    def urls(cls, config: Mapping[str, Any]) -> list[str]:
        """The gateway's base URLs in ``config`` (its origins are the checkout's form targets)."""
        return [str(config[cls.url_setting])] if config.get(cls.url_setting) else []

    @classmethod
    def config_problems(cls, config: Mapping[str, Any]) -> list[str]:
        """What in ``config`` stops this gateway from being offered at all (any environment)."""
        return []

    def reference_for(self, order_number: str, seq: int) -> str:
        """Our id of attempt ``seq`` of an order at the gateway, unique per attempt.

        :raise ValueError: the gateway's id format has no room for another attempt.
        """
        return f"{order_number}-{seq}"

    def start(self, request: PaymentRequest, journal: Journal) -> Redirect:
        raise NotImplementedError

    def parse_return(self, args: Mapping[str, str]) -> Notice:
        raise BadNotice(f"{self.title} sends no customer back to the shop.")

    def parse_callback(self, kind: str, form: Mapping[str, str], journal: Journal) -> Notice:
        raise BadNotice(f"{self.title} sends no server-to-server callback.")

    def fetch_result(self, attempt: AttemptRef, journal: Journal) -> Result:
        raise NotImplementedError

    def acknowledge(self, attempt: AttemptRef, journal: Journal) -> Result | None:
        """Confirm an authorized payment where the protocol wants it; None: nothing to do."""
        return None

    def capture(self, attempt: AttemptRef, amount: int, journal: Journal) -> Result:
        raise GatewayRefused(f"{self.title} has no capture")

    def void(self, attempt: AttemptRef, journal: Journal) -> Result:
        raise GatewayRefused(f"{self.title} has no void")

    def refund(self, attempt: AttemptRef, amount: int, journal: Journal) -> Result:
        raise GatewayRefused(f"{self.title} has no refund")

    def release_rest(self, attempt: AttemptRef, journal: Journal) -> Result:
        """Give back to the card what a partial capture left reserved (``releases_rest``)."""
        raise GatewayRefused(f"{self.title} cannot release the rest of a hold")
