"""Reading AltaPay's ``APIResponse`` XML: the envelope, its transactions, and what a
transaction's status and amounts say about the money (gateways.md §3.4, §3.8).

Only with defusedxml and no DTD at all; every amount is converted to minor units of the
transaction's own currency, and anything unreadable is refused rather than guessed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from storefront.gateways.base import BadNotice, GatewayRefused, Outcome, Result
from storefront.i18n import N_
from storefront.money import UnsupportedCurrency, currency_info, from_major

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
    Outcome.DECLINED: N_("The payment was declined."),
    Outcome.CANCELLED: N_("The payment was cancelled on the payment page."),
    Outcome.EXPIRED: N_("The card reservation expired."),
}


class Unreadable(Exception):
    """An answer or callback body that is not a well-formed, harmless APIResponse."""


@dataclass(frozen=True)
class Envelope:
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
class Transaction:
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


def envelope(content: bytes) -> Envelope:
    """Parse an ``APIResponse``. Only with defusedxml, and no DTD at all: a gateway answer has
    none, and entity tricks (billion laughs, external references) must never be expanded."""
    if not content.strip():
        raise Unreadable("empty")
    try:
        root = fromstring(content, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise Unreadable(f"refused XML construct ({type(exc).__name__})") from exc
    except (ParseError, ValueError) as exc:
        raise Unreadable("not well-formed XML") from exc
    if root.tag != "APIResponse":
        raise Unreadable(f"root element is {root.tag!r}, not APIResponse")
    code = _text(root, "Header/ErrorCode")
    if not code:
        raise Unreadable("no Header/ErrorCode")
    return Envelope(code, _text(root, "Header/ErrorMessage"), root.find("Body"))


def _text(element: Element | None, path: str) -> str:
    node = None if element is None else element.find(path)
    return "" if node is None or node.text is None else node.text.strip()


def transactions(envelope: Envelope) -> list[Transaction]:
    return [_transaction(element) for element in envelope.transactions]


def _transaction(element: Element) -> Transaction:
    currency = _alpha(_text(element, "MerchantCurrencyAlpha") or _text(element, "MerchantCurrency"))
    return Transaction(
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
        raise Unreadable("the transaction names no currency")
    try:
        return currency_info(code).code
    except UnsupportedCurrency:
        return f"?{code}"  # kept visible, and never equal to an order's currency


def _minor(text: str, currency: str) -> int:
    if not text:
        return 0
    if currency.startswith("?"):
        raise Unreadable(f"an amount in an unknown currency {currency[1:]}")
    try:
        return from_major(text, currency)
    except ValueError as exc:
        raise Unreadable(str(exc)) from exc


def choose(
    transactions: Sequence[Transaction],
    transaction_id: str | None = None,
    payment_id: str | None = None,
) -> tuple[Transaction, list[str]] | None:
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


def check_agreement(params: Mapping[str, str], transaction: Transaction) -> None:
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


def _outcome(body_result: str, transaction: Transaction) -> Outcome:
    known = TRANSACTION_STATUS.get(transaction.status.lower())
    if known is Outcome.VOIDED and transaction.captured > 0:
        # The rest of a partly captured reservation released: what was captured stays ours.
        return Outcome.REFUNDED if transaction.refunded > 0 else Outcome.PAID
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


def result(envelope: Envelope, transaction: Transaction, others: list[str]) -> Result:
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


def _customer_message(envelope: Envelope, outcome: Outcome) -> str:
    # CardHolderErrorMessage is written for the cardholder, but AltaPay says when it must be
    # shown; otherwise a plain text of ours (the merchant message is never for customers).
    if envelope.text("CardHolderMessageMustBeShown").lower() == "true":
        shown = envelope.text("CardHolderErrorMessage")
        if shown:
            return shown[:200]
    return MESSAGES.get(outcome, "")


def refuse_on_error(envelope: Envelope) -> None:
    if envelope.error_code != "0":
        raise GatewayRefused(envelope.error_message or "the call was refused", envelope.error_code)


def merchant_message(envelope: Envelope) -> str:
    return (
        envelope.text("MerchantErrorMessage")
        or envelope.text("CardHolderErrorMessage")
        or f"Result {envelope.result or 'missing'}"
    )[:300]
