"""AltaPay Merchant API: ``createPaymentRequest`` → ``Url``; a signed callback or ``payments``.

Protocol rules this adapter follows (gateways.md §3):
- every call is a form-encoded POST with HTTP Basic auth; nested values use PHP brackets
  (``config[callback_ok]``, ``orderLines[0][unitPrice]``); amounts are decimal major units with
  at most two decimals;
- answers are ``APIResponse`` XML: a Header ``ErrorCode`` other than 0 means the call itself
  failed, ``Body/Result`` (``Success``/``Failed``/``Error``/``Open``) is the business outcome;
- there is no browser return to the shop: the gateway POSTs our ``callback_ok``/``fail``/``open``
  pages (and ``callback_notification`` later) and shows the customer our answer;
- a callback's ``checksum`` is MD5 over the *posted* ``amount``, ``currency`` and ``shop_orderid``
  plus the shared secret; the ``xml`` it carries is bound to the checksum only through those
  three fields, so they must agree with the xml's transaction;
- a transaction's state is read from its amounts as much as from its status: a "failed" or
  "error" callback can describe money that is reserved (§3.8).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from storefront.gateways.base import (
    AttemptRef,
    BadNotice,
    GatewayError,
    GatewayRefused,
    HttpGateway,
    Journal,
    Notice,
    Outcome,
    PaymentRequest,
    Redirect,
    Result,
    Trigger,
    checksums_match,
    redact,
)
from storefront.money import UnsupportedCurrency, currency_info, from_major, to_two_decimals

CALLBACK_KINDS = ("ok", "fail", "open", "notification")
# Our pages by PaymentRequest.callback_urls key → the config[...] parameter that names them.
CALLBACK_CONFIG = {
    "ok": "callback_ok",
    "fail": "callback_fail",
    "open": "callback_open",
    "notification": "callback_notification",
    "form": "callback_form",
    "verify_order": "callback_verify_order",
}
SHOP_ORDERID = re.compile(r"^[a-zA-Z0-9-]{1,100}$")
PAYMENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")  # a UUID in practice

# TransactionStatus → what it means for the money (gateways.md §3.4). Statuses not listed here
# are read from the amounts and the Body Result instead (see ``_outcome``).
TRANSACTION_STATUS = {
    "preauth": Outcome.AUTHORIZED,
    "captured": Outcome.PAID,
    "bank_payment_finalized": Outcome.PAID,
    "released": Outcome.VOIDED,
    "refunded": Outcome.REFUNDED,
    "bank_payment_refunded": Outcome.REFUNDED,
    "epayment_cancelled": Outcome.CANCELLED,
    "reauth_failed": Outcome.EXPIRED,  # the hold ran out and could not be renewed (§3.7)
}
# Statuses of a try that reserved nothing and never will. ``payments`` has no Body Result, so
# the status alone must say it: "3dsecure_failed" is AltaPay's (§3.4); "epayment_declined" and
# "error" are what the sandbox gateway reports for declines and acquirer errors.
FAILED_STATUSES = frozenset({"3dsecure_failed", "3dsecure_declined", "epayment_declined", "error"})
MESSAGES = {
    Outcome.DECLINED: "The payment was declined.",
    Outcome.CANCELLED: "The payment was cancelled on the payment page.",
    Outcome.EXPIRED: "The card reservation expired.",
}


def from_config(config: Mapping) -> AltaPayGateway:
    return AltaPayGateway(
        url=config["ALTAPAY_URL"],
        username=config["ALTAPAY_USERNAME"],
        password=config["ALTAPAY_PASSWORD"],
        terminal=config["ALTAPAY_TERMINAL"],
        secret=config["ALTAPAY_SECRET"],
        capture=bool(config["ALTAPAY_CAPTURE"]),
        connect_timeout=float(config["GATEWAY_CONNECT_TIMEOUT"]),
        read_timeout=float(config["GATEWAY_READ_TIMEOUT"]),
    )


def checksum(amount: str, currency: str, shop_orderid: str, secret: str) -> str:
    """The callback checksum (§3.5): the sorted ``key=value`` pairs joined by commas, MD5 hex."""
    pairs = {"amount": amount, "currency": currency, "shop_orderid": shop_orderid, "secret": secret}
    signed = ",".join(f"{key}={pairs[key]}" for key in sorted(pairs))
    # MD5 is the protocol's choice, not ours; the secret never leaves the two servers.
    return hashlib.md5(signed.encode("utf-8")).hexdigest()  # noqa: S324


class _Unreadable(Exception):
    """An answer or callback body that is not a well-formed, harmless APIResponse."""


@dataclass(frozen=True)
class _Envelope:
    error_code: str
    error_message: str
    body: Element | None

    def text(self, name: str) -> str:
        return _text(self.body, name)

    @property
    def result(self) -> str:
        return self.text("Result")

    @property
    def transactions(self) -> list[Element]:
        return [] if self.body is None else self.body.findall("Transactions/Transaction")


@dataclass(frozen=True)
class _Transaction:
    """One ``Transaction`` element, its amounts in minor units of its merchant currency."""

    transaction_id: str
    payment_id: str
    shop_orderid: str
    terminal: str
    status: str
    currency: str  # ISO 4217 alphabetic, or "?<code>" when the shop does not know it
    reserved: int
    captured: int
    refunded: int
    masked_pan: str

    @property
    def holds_money(self) -> bool:
        return self.reserved > 0 or self.captured > 0


class AltaPayGateway(HttpGateway):
    name = "altapay"
    title = "Card (AltaPay)"
    supports_refund = True

    def __init__(self, *, url, username, password, terminal, secret, capture, **timeouts):
        super().__init__(**timeouts)
        self.base = url if url.endswith("/") else url + "/"
        self.auth = (username, password)
        self.terminal = terminal
        self.secret = secret
        self.capture_at_once = capture

    # Starting a payment -------------------------------------------------------------------
    def reference_for(self, order_number: str, seq: int) -> str:
        # shop_orderid is [a-zA-Z0-9-]{1,100} and usable at most four times: one per attempt.
        return f"{order_number}-{seq}"

    def start(self, request: PaymentRequest, journal: Journal) -> Redirect:
        fields = self._payment_request_fields(request)
        # Not retried: a second createPaymentRequest would be a second payment page for the
        # same shop_orderid (and use up one of its four uses); a lost answer stays unknown.
        envelope = self._call("createPaymentRequest", fields, journal, retry_safe=False)
        _refuse_on_error(envelope)
        if envelope.result != "Success":
            raise GatewayRefused(_merchant_message(envelope), code=envelope.result or "?")
        request_id, url = envelope.text("PaymentRequestId"), envelope.text("Url")
        usable = PAYMENT_REQUEST_ID.match(request_id) and url.startswith(("https://", "http://"))
        if not usable:
            raise GatewayError("altapay: createPaymentRequest answered no usable id or Url")
        return Redirect(gateway_id=request_id, url=url)

    def _payment_request_fields(self, request: PaymentRequest) -> dict[str, str]:
        first, last = _split_name(request.customer_name)
        fields = {
            "terminal": self.terminal,
            "shop_orderid": request.reference,
            "amount": to_two_decimals(request.amount, request.currency),
            "currency": request.currency,
            "language": request.language,
            "type": "paymentAndCapture" if self.capture_at_once else "payment",
            "transaction_info[order_number]": request.order_number,
            "customer_info[email]": request.email,
            "customer_info[billing_firstname]": first,
            "customer_info[billing_lastname]": last,
            "customer_info[billing_country]": request.country,
        }
        for kind, parameter in CALLBACK_CONFIG.items():
            if request.callback_urls.get(kind):
                fields[f"config[{parameter}]"] = request.callback_urls[kind]
        for i, line in enumerate(request.lines):
            fields[f"orderLines[{i}][description]"] = line.name
            fields[f"orderLines[{i}][itemId]"] = str(i + 1)
            fields[f"orderLines[{i}][quantity]"] = str(line.quantity)
            fields[f"orderLines[{i}][unitPrice]"] = to_two_decimals(
                line.unit_amount, request.currency
            )
        return fields

    # What came back -----------------------------------------------------------------------
    def parse_return(self, args: Mapping[str, str]) -> Notice:
        # The customer never comes back to us from AltaPay: the gateway fetches our result page
        # server-to-server and shows it. Anything arriving here is not from the gateway.
        raise BadNotice("AltaPay has no browser return; its result pages are callbacks.")

    def parse_callback(self, kind: str, form: Mapping[str, str], journal: Journal) -> Notice:
        params = {str(k): str(v) for k, v in form.items()}
        journal.record(
            "callback", f"callback {kind} status={params.get('status', '?')}", _show(params)
        )
        reference, payment_id = params.get("shop_orderid"), params.get("payment_id")
        if kind not in CALLBACK_KINDS:
            raise BadNotice(f"unknown callback page {kind!r}", reference=reference)
        if not reference or not SHOP_ORDERID.match(reference):
            raise BadNotice("shop_orderid is missing or malformed")
        if self.secret:
            self._verify_checksum(params, reference, payment_id)
        try:
            envelope = _envelope(params.get("xml", "").encode("utf-8"))
            chosen = _choose(
                _transactions(envelope),
                transaction_id=params.get("transaction_id"),
                payment_id=payment_id,
            )
        except _Unreadable as exc:
            raise BadNotice(f"the callback xml is unusable: {exc}", reference) from exc
        if chosen is None:
            # Nothing to read: a reason to ask ``payments``, no more.
            return Notice(Trigger.CALLBACK, reference=reference, kind=kind)
        transaction, others = chosen
        _check_agreement(params, transaction)
        result = _result(envelope, transaction, others)
        return Notice(
            trigger=Trigger.CALLBACK,
            kind=kind,
            reference=transaction.shop_orderid,
            # Only a checksummed callback is the gateway's word; unsigned, the caller asks.
            result=result if self.secret else None,
        )

    def _verify_checksum(self, params: Mapping[str, str], reference: str, payment_id) -> None:
        given = params.get("checksum", "").strip().lower()
        expected = checksum(
            params.get("amount", ""), params.get("currency", ""), reference, self.secret
        )
        # Required, unlike the vendor's plugins, which skip the check when none is posted:
        # an unsigned callback would otherwise be as good as a signed one.
        if not checksums_match(given, expected):
            raise BadNotice("checksum missing or wrong", reference=reference)

    def fetch_result(self, attempt: AttemptRef, journal: Journal) -> Result:
        envelope = self._call(
            "payments", {"shop_orderid": attempt.reference}, journal, retry_safe=True
        )
        if envelope.error_code != "0":
            # The query failed; that says nothing about the money.
            raise GatewayError(f"altapay: payments failed: ErrorCode={envelope.error_code}")
        try:
            transactions = [
                t for t in _transactions(envelope) if t.shop_orderid == attempt.reference
            ]
            chosen = _choose(
                transactions,
                transaction_id=attempt.data.get("transaction_id"),
                payment_id=attempt.gateway_id,
            )
        except _Unreadable as exc:
            raise GatewayError(
                f"altapay: payments answered an unusable transaction: {exc}"
            ) from exc
        if chosen is None:
            # No card was ever submitted for this shop_orderid (or not yet).
            return Result(outcome=Outcome.PENDING, codes="payments: no transaction yet")
        return _result(envelope, *chosen)

    def acknowledge(self, attempt: AttemptRef, journal: Journal) -> Result | None:
        return None  # nothing to acknowledge: AltaPay decides without the shop's confirmation

    # Back office ----------------------------------------------------------------------------
    def capture(self, attempt: AttemptRef, amount: int, journal: Journal) -> Result:
        fields = {"amount": to_two_decimals(amount, attempt.currency)}
        return self._transaction_action("captureReservation", attempt, journal, fields)

    def void(self, attempt: AttemptRef, journal: Journal) -> Result:
        return self._transaction_action("releaseReservation", attempt, journal, {})

    def refund(self, attempt: AttemptRef, amount: int, journal: Journal) -> Result:
        fields = {"amount": to_two_decimals(amount, attempt.currency)}
        return self._transaction_action("refundCapturedReservation", attempt, journal, fields)

    def _transaction_action(self, method, attempt, journal, fields) -> Result:
        transaction_id = self._transaction_id(attempt, journal)
        envelope = self._call(
            method, {"transaction_id": transaction_id, **fields}, journal, retry_safe=False
        )
        _refuse_on_error(envelope)
        if envelope.result != "Success":
            raise GatewayRefused(_merchant_message(envelope), code=envelope.result or "?")
        try:
            chosen = _choose(_transactions(envelope), transaction_id=transaction_id)
        except _Unreadable as exc:
            raise GatewayError(
                f"altapay: {method} answered an unusable transaction: {exc}"
            ) from exc
        if chosen is None:
            # The action was done but the answer does not show the state it left: ask.
            return self.fetch_result(attempt, journal)
        return _result(envelope, *chosen)

    def _transaction_id(self, attempt: AttemptRef, journal: Journal) -> str:
        known = attempt.data.get("transaction_id")
        if known:
            return str(known)
        # Back-office methods act on a transaction, which the attempt may not have heard of
        # yet (no callback reached us): the status query names it.
        found = self.fetch_result(attempt, journal).data.get("transaction_id")
        if not found:
            raise GatewayRefused("the gateway has no transaction for this payment")
        return str(found)

    # Plumbing ---------------------------------------------------------------------------------
    def _call(self, method: str, fields: Mapping[str, str], journal: Journal, retry_safe: bool):
        response = self.send(
            "POST",
            self.base + method,
            journal,
            data=fields,
            auth=self.auth,
            retry_safe=retry_safe,
            log_fields={**fields, "api_user": self.auth[0]},
        )
        if response.status_code in (401, 403):
            raise GatewayRefused(
                "the API user or password was refused", code=str(response.status_code)
            )
        if response.status_code != 200:
            raise GatewayError(f"altapay: HTTP {response.status_code} from {method}")
        try:
            return _envelope(response.content)
        except _Unreadable as exc:
            raise GatewayError(f"altapay: {method} answered something unusable: {exc}") from exc


# Reading APIResponse XML -------------------------------------------------------------------
def _envelope(content: bytes) -> _Envelope:
    """Parse an ``APIResponse``. Only with defusedxml, and no DTD at all: a gateway answer has
    none, and entity tricks (billion laughs, external references) must never be expanded."""
    if not content.strip():
        raise _Unreadable("empty")
    try:
        root = fromstring(content, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise _Unreadable(f"refused XML construct ({type(exc).__name__})") from exc
    except (ParseError, ValueError) as exc:
        raise _Unreadable("not well-formed XML") from exc
    if root.tag != "APIResponse":
        raise _Unreadable(f"root element is {root.tag!r}, not APIResponse")
    code = _text(root, "Header/ErrorCode")
    if not code:
        raise _Unreadable("no Header/ErrorCode")
    return _Envelope(code, _text(root, "Header/ErrorMessage"), root.find("Body"))


def _text(element: Element | None, path: str) -> str:
    node = None if element is None else element.find(path)
    return "" if node is None or node.text is None else node.text.strip()


def _transactions(envelope: _Envelope) -> list[_Transaction]:
    return [_transaction(element) for element in envelope.transactions]


def _transaction(element: Element) -> _Transaction:
    currency = _alpha(_text(element, "MerchantCurrencyAlpha") or _text(element, "MerchantCurrency"))
    return _Transaction(
        transaction_id=_text(element, "TransactionId"),
        payment_id=_text(element, "PaymentId"),
        shop_orderid=_text(element, "ShopOrderId"),
        terminal=_text(element, "Terminal"),
        status=_text(element, "TransactionStatus"),
        currency=currency,
        reserved=_minor(_text(element, "ReservedAmount"), currency),
        captured=_minor(_text(element, "CapturedAmount"), currency),
        refunded=_minor(_text(element, "RefundedAmount"), currency),
        masked_pan=_text(element, "CreditCardMaskedPan")[:32],
    )


def _alpha(code: str) -> str:
    if not code:
        raise _Unreadable("the transaction names no currency")
    try:
        return currency_info(code).code
    except UnsupportedCurrency:
        return f"?{code}"  # kept visible, and never equal to an order's currency


def _minor(text: str, currency: str) -> int:
    if not text:
        return 0
    if currency.startswith("?"):
        raise _Unreadable(f"an amount in an unknown currency {currency[1:]}")
    try:
        return from_major(text, currency)
    except ValueError as exc:
        raise _Unreadable(str(exc)) from exc


def _choose(
    transactions: Sequence[_Transaction],
    transaction_id: str | None = None,
    payment_id: str | None = None,
) -> tuple[_Transaction, list[str]] | None:
    """The transaction that speaks for the payment, and the ids of the others.

    One shop_orderid can carry several transactions: declined tries before the one that
    worked, or a double payment (§3.8). The money decides: a transaction holding money wins,
    the one we were told about first; the others' ids go to the operator.
    """
    if not transactions:
        return None
    named = [t for t in transactions if transaction_id and t.transaction_id == str(transaction_id)]
    ours = [t for t in transactions if payment_id and t.payment_id == payment_id]
    holding = [t for t in transactions if t.holds_money]
    ranked = (
        [t for t in named if t.holds_money]
        + [t for t in ours if t.holds_money]
        + holding
        + named
        + ours
        + [transactions[-1]]  # the latest try
    )
    chosen = ranked[0]
    return chosen, [t.transaction_id for t in transactions if t is not chosen]


def _check_agreement(params: Mapping[str, str], transaction: _Transaction) -> None:
    """The checksum covers only the posted amount, currency and shop_orderid; the xml is bound
    to it through them. Any disagreement means the xml is not the one that was signed."""

    def refused(what: str) -> BadNotice:
        return BadNotice(
            f"posted {what} disagrees with the callback xml",
            reference=params.get("shop_orderid"),
        )

    if transaction.shop_orderid != params.get("shop_orderid"):
        raise refused("shop_orderid")
    try:
        currency = currency_info(params.get("currency", "")).code
        amount = from_major(params.get("amount", ""), currency)
    except ValueError as exc:  # UnsupportedCurrency is a ValueError too
        raise refused("currency or amount") from exc
    if currency != transaction.currency:
        raise refused("currency")
    # A callback for a try that reserved nothing may post the requested amount; one that
    # reserved money must post exactly that money.
    if transaction.holds_money and amount != transaction.reserved:
        raise refused("amount")


def _outcome(body_result: str, transaction: _Transaction) -> Outcome:
    known = TRANSACTION_STATUS.get(transaction.status.lower())
    if known is not None:
        return known
    # Read the amounts before the words: the Magento plugin's lesson is that "error" or
    # "failed" can come with money reserved, and money reserved is not a declined payment.
    if transaction.captured > 0:
        return Outcome.PAID
    if transaction.reserved > 0:
        return Outcome.AUTHORIZED
    if body_result in ("Failed", "Error") or transaction.status.lower() in FAILED_STATUSES:
        return Outcome.DECLINED
    return Outcome.PENDING  # Open, or a try still in progress ("created", 3-D Secure)


def _result(envelope: _Envelope, transaction: _Transaction, others: list[str]) -> Result:
    outcome = _outcome(envelope.result, transaction)
    codes = f"TransactionStatus={transaction.status or '?'}"
    if envelope.result:
        codes = f"Result={envelope.result} {codes}"
    data: dict[str, Any] = {
        "transaction_id": transaction.transaction_id,
        "payment_id": transaction.payment_id,
    }
    if others:
        data["other_transactions"] = others
    return Result(
        outcome=outcome,
        # AltaPay names a payment by its PaymentId, which its documentation does not promise
        # to equal the PaymentRequestId we keep; our shop_orderid is unique per attempt, so it
        # alone binds the answer to the attempt. The PaymentId is kept in ``data``.
        gateway_id=None,
        reference=transaction.shop_orderid or None,
        amount=transaction.reserved,
        currency=transaction.currency,
        captured=transaction.captured,
        refunded=transaction.refunded,
        masked_card=transaction.masked_pan,
        gateway_ref=transaction.transaction_id[:64],
        codes=codes,
        message=_customer_message(envelope, outcome),
        merchant=transaction.terminal or None,
        data=data,
    )


def _customer_message(envelope: _Envelope, outcome: Outcome) -> str:
    # CardHolderErrorMessage is written for the cardholder, but AltaPay says when it must be
    # shown; otherwise a plain text of ours (the merchant message is never for customers).
    if envelope.text("CardHolderMessageMustBeShown").lower() == "true":
        shown = envelope.text("CardHolderErrorMessage")
        if shown:
            return shown[:200]
    return MESSAGES.get(outcome, "")


def _refuse_on_error(envelope: _Envelope) -> None:
    if envelope.error_code != "0":
        raise GatewayRefused(envelope.error_message or "the call was refused", envelope.error_code)


def _merchant_message(envelope: _Envelope) -> str:
    return (
        envelope.text("MerchantErrorMessage")
        or envelope.text("CardHolderErrorMessage")
        or f"Result {envelope.result or 'missing'}"
    )[:300]


def _split_name(name: str) -> tuple[str, str]:
    parts = name.strip().rsplit(" ", 1)
    return (parts[0], parts[1]) if len(parts) == 2 else (parts[0], "")


_XML_TOKENS = re.compile(r"(<(\w*Token)>)[^<]*(</\2>)")


def _show(params: Mapping[str, str]) -> str:
    shown = redact(params)
    if isinstance(shown.get("xml"), str):
        shown["xml"] = _XML_TOKENS.sub(r"\1[redacted]\3", shown["xml"])
    return "\n".join(f"{k}={v}" for k, v in sorted(shown.items()))
