"""The adapter interface every gateway family implements, and the HTTP plumbing they share.

An adapter translates between the shop's words and one gateway's wire protocol and talks HTTP.
It never touches the database: it returns values, and it reports every exchange to a
:class:`Journal` that the payments service stores as evidence. ``payments.settle`` owns every
state change.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import requests


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
    name: str
    quantity: int
    unit_amount: int  # minor units


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
    language: str  # ISO 639-1
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


class GatewayError(Exception):
    """The gateway's word could not be had or read (timeout, 5xx, garbage): outcome unknown."""


class GatewayRefused(Exception):
    """The gateway answered and said no (bad parameters, credentials, a duplicate)."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


class BadNotice(ValueError):
    """A return or callback that is malformed or fails authentication. The message is safe.

    ``reference``/``gateway_id`` name the attempt it claims to be about, where they could be
    read, so that the refused notice is still kept in that attempt's evidence.
    """

    def __init__(self, message: str, reference: str | None = None, gateway_id: str | None = None):
        super().__init__(message)
        self.reference = reference
        self.gateway_id = gateway_id


class Journal(Protocol):
    """Where an adapter reports each exchange: kind is request, response, callback or error."""

    def record(self, kind: str, summary: str, detail: str = "") -> None: ...


class Gateway(Protocol):
    name: str  # "rbs", "altapay", "interpay"
    title: str  # what the customer sees at checkout
    supports_refund: bool
    # True where an approval is final only once we acknowledge it (InterPay's Ack): settle()
    # then acknowledges an authorized payment right after committing it, and the order is paid
    # only on the confirmed capture.
    acknowledges: bool

    def reference_for(self, order_number: str, seq: int) -> str: ...
    def start(self, request: PaymentRequest, journal: Journal) -> Redirect: ...
    def parse_return(self, args: Mapping[str, str]) -> Notice: ...
    def parse_callback(self, kind: str, form: Mapping[str, str], journal: Journal) -> Notice: ...
    def fetch_result(self, attempt: AttemptRef, journal: Journal) -> Result: ...
    def acknowledge(self, attempt: AttemptRef, journal: Journal) -> Result | None: ...
    def capture(self, attempt: AttemptRef, amount: int, journal: Journal) -> Result: ...
    def void(self, attempt: AttemptRef, journal: Journal) -> Result: ...
    def refund(self, attempt: AttemptRef, amount: int, journal: Journal) -> Result: ...


_SECRET_NAMES = re.compile(r"pass|secret|token|key|checksum|authorization|pan|cvc|cvv", re.I)


def redact(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``fields`` fit for the evidence log: secrets replaced by a marker."""
    return {k: ("[redacted]" if _SECRET_NAMES.search(str(k)) else v) for k, v in fields.items()}


def checksums_match(given: str, expected: str) -> bool:
    """Whether a callback's checksum is the one we compute, in constant time (the comparison
    must not tell an attacker how much of it was right). As bytes: ``compare_digest`` refuses
    a str with non-ASCII characters, which a forged callback may well send."""
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


class HttpGateway:
    """Shared plumbing: one ``requests.Session`` per adapter, timeouts on every call, evidence.

    ``retry_safe`` calls (status queries, and registrations that reuse the same reference) are
    tried once more after a transport fault; everything else is tried exactly once.
    """

    name = "gateway"

    def __init__(self, connect_timeout: float, read_timeout: float):
        self.timeout = (connect_timeout, read_timeout)
        self.http = requests.Session()
        self.http.headers["User-Agent"] = "Storefront/0.1 (+payments)"

    def send(
        self,
        method: str,
        url: str,
        journal: Journal,
        *,
        data: Mapping[str, Any] | None = None,
        json_body: Any = None,
        auth: tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retry_safe: bool = False,
        log_fields: Mapping[str, Any] | None = None,
    ) -> requests.Response:
        """Send one request and return the response, or raise :class:`GatewayError`."""
        shown = redact(log_fields if log_fields is not None else (data or json_body or {}))
        journal.record("request", f"{method} {_path(url)}", _dump(shown))
        tries = 2 if retry_safe else 1
        for attempt in range(1, tries + 1):
            try:
                response = self.http.request(
                    method,
                    url,
                    data=data,
                    json=json_body,
                    auth=auth,
                    headers=headers,
                    timeout=self.timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                journal.record("error", f"{type(exc).__name__} on try {attempt}", str(exc)[:500])
                if attempt == tries:
                    raise GatewayError(f"{self.name}: no answer ({type(exc).__name__})") from exc
                continue
            journal.record(
                "response", f"HTTP {response.status_code} from {_path(url)}", _body(response)
            )
            if response.status_code >= 500 and attempt < tries:
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover


def _path(url: str) -> str:
    return re.sub(r"^[a-z]+://[^/]+", "", url) or "/"


def _dump(fields: Any) -> str:
    try:
        return json.dumps(fields, indent=1, sort_keys=True, ensure_ascii=False, default=str)
    except TypeError:
        return repr(fields)


_BODY_SECRETS = re.compile(
    r'("?(?:password|PASS|secret|token|TOKEN|checksum)"?\s*[:=]\s*"?)([^"&,<\s]+)', re.I
)


def _body(response: requests.Response, limit: int = 20_000) -> str:
    text = response.text[:limit]
    return _BODY_SECRETS.sub(r"\1[redacted]", text)
