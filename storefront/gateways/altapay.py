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
  "error" callback can describe money that is reserved (§3.8);
- the basket is ``orderLines[i][…]`` (§3.2): ``unitPrice`` is the price of one unit *excluding*
  tax and ``taxAmount`` the tax of the whole line (AltaPay's API client documents both so), so a
  line comes to ``quantity × unitPrice + taxAmount``; ``goodsType`` is ``item`` or ``shipment``.

Our prices include VAT, and a line's price without VAT need not share out over its units in
whole cents (3 × 0.99 at 23 % is 2.41 net: 0.8033… a unit). Such a line is sent as two lines of
the same item, one at the lower cent and one at the higher (2 × 0.80 and 1 × 0.81), with the
line's VAT split between them, so that every line and the whole basket still add up to the cent.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from storefront.gateways import altapay_xml
from storefront.gateways.base import (
    AttemptRef,
    BadNotice,
    EventKind,
    GatewayError,
    GatewayRefused,
    Journal,
    Line,
    Notice,
    Outcome,
    PaymentRequest,
    Redirect,
    Result,
    Trigger,
)
from storefront.gateways.http import HttpGateway, checksums_match, redact
from storefront.money import to_two_decimals

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


def checksum(amount: str, currency: str, shop_orderid: str, secret: str) -> str:
    """The callback checksum (§3.5): the sorted ``key=value`` pairs joined by commas, MD5 hex."""
    pairs = {"amount": amount, "currency": currency, "shop_orderid": shop_orderid, "secret": secret}
    signed = ",".join(f"{key}={pairs[key]}" for key in sorted(pairs))
    # MD5 is the protocol's choice, not ours; the secret never leaves the two servers.
    return hashlib.md5(signed.encode("utf-8")).hexdigest()  # noqa: S324


class AltaPayGateway(HttpGateway):
    name = "altapay"
    title = "Card (AltaPay)"
    processor = "AltaPay"
    url_setting = "ALTAPAY_URL"
    # The payment page languages we assume every AltaPay terminal offers (its payment window's
    # list, which the sandbox shares): German and Russian among them, so this shop's three
    # are all sent; a language outside it would make createPaymentRequest fail (§3.2).
    page_languages = frozenset(
        re.findall(
            r"[a-z]{2}",
            "cs da de el en es et fi fr hr hu is it ja lt lv nb nl no pl pt ro ru sk sl sv th "
            "tr zh",
        )
    )
    required_settings = ("ALTAPAY_USERNAME", "ALTAPAY_PASSWORD", "ALTAPAY_SECRET")
    # The gateway POSTs our ok/fail/open pages and shows the customer what we answer (with
    # JavaScript stripped); the notification is for the gateway alone.
    callback_kinds = ("ok", "fail", "open", "notification")
    relayed_kinds = ("ok", "fail", "open")
    has_browser_return = False
    # A reservation is captured in as many parts as wanted up to what is reserved, and
    # releaseReservation gives back what is still reserved and not captured: the rest
    # of a partial capture stays on the card until one or the other.
    keeps_rest = True
    captures_more = True
    releases_rest = True

    def __init__(
        self,
        *,
        url,
        username,
        password,
        terminal,
        secret,
        capture,
        payment_page=False,
        basket=True,
        **timeouts,
    ):
        super().__init__(**timeouts)
        self.base = url if url.endswith("/") else url + "/"
        self.auth = (username, password)
        self.terminal = terminal
        self.merchant = terminal  # every transaction names its terminal
        self.secret = secret
        self.capture_at_once = capture
        # Send config[callback_form]: the gateway shows its card fields inside our own page.
        self.payment_page = payment_page
        self.send_basket = basket

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AltaPayGateway:
        return cls(
            url=config["ALTAPAY_URL"],
            username=config["ALTAPAY_USERNAME"],
            password=config["ALTAPAY_PASSWORD"],
            terminal=config["ALTAPAY_TERMINAL"],
            secret=config["ALTAPAY_SECRET"],
            capture=config["ALTAPAY_CAPTURE"],
            payment_page=config["ALTAPAY_PAYMENT_PAGE"],
            basket=config["ALTAPAY_BASKET"],
            connect_timeout=config["GATEWAY_CONNECT_TIMEOUT"],
            read_timeout=config["GATEWAY_READ_TIMEOUT"],
        )

    # Starting a payment -------------------------------------------------------------------
    def reference_for(self, order_number: str, seq: int) -> str:
        # shop_orderid is [a-zA-Z0-9-]{1,100} and usable at most four times: one per attempt.
        return f"{order_number}-{seq}"

    def start(self, request: PaymentRequest, journal: Journal) -> Redirect:
        fields = self._payment_request_fields(request)
        # Not retried: a second createPaymentRequest would be a second payment page for the
        # same shop_orderid (and use up one of its four uses); a lost answer stays unknown.
        envelope = self._call("createPaymentRequest", fields, journal, retry_safe=False)
        altapay_xml.refuse_on_error(envelope)
        if envelope.result != "Success":
            raise GatewayRefused(
                altapay_xml.merchant_message(envelope), code=envelope.result or "?"
            )
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
            "type": "paymentAndCapture" if self.capture_at_once else "payment",
            "transaction_info[order_number]": request.order_number,
            "customer_info[email]": request.email,
            "customer_info[billing_firstname]": first,
            "customer_info[billing_lastname]": last,
            "customer_info[billing_country]": request.country,
        }
        # An unsupported language is an error (§3.2): one AltaPay lacks is not sent, and the
        # gateway takes the browser's Accept-Language instead.
        language = self.page_language(request.language)
        if language:
            fields["language"] = language
        for kind, parameter in CALLBACK_CONFIG.items():
            if kind == "form" and not self.payment_page:
                continue
            if request.callback_urls.get(kind):
                fields[f"config[{parameter}]"] = request.callback_urls[kind]
        if self.send_basket and sum(line.amount for line in request.lines) == request.amount:
            for i, values in enumerate(_order_lines(request.lines, request.currency)):
                fields.update({f"orderLines[{i}][{name}]": v for name, v in values.items()})
        return fields

    # What came back -----------------------------------------------------------------------
    def parse_return(self, args: Mapping[str, str]) -> Notice:
        # The customer never comes back to us from AltaPay: the gateway fetches our result page
        # server-to-server and shows it. Anything arriving here is not from the gateway.
        raise BadNotice("AltaPay has no browser return; its result pages are callbacks.")

    def parse_callback(self, kind: str, form: Mapping[str, str], journal: Journal) -> Notice:
        params = {str(k): str(v) for k, v in form.items()}
        journal.record(
            EventKind.CALLBACK, f"callback {kind} status={params.get('status', '?')}", _show(params)
        )
        reference, payment_id = params.get("shop_orderid"), params.get("payment_id")
        if kind not in self.callback_kinds:
            raise BadNotice(f"unknown callback page {kind!r}", reference=reference)
        if not reference or not SHOP_ORDERID.match(reference):
            raise BadNotice("shop_orderid is missing or malformed")
        if self.secret:
            self._verify_checksum(params, reference, payment_id)
        try:
            envelope = altapay_xml.envelope(params.get("xml", "").encode("utf-8"))
            chosen = altapay_xml.choose(
                altapay_xml.transactions(envelope),
                transaction_id=params.get("transaction_id"),
                payment_id=payment_id,
            )
        except altapay_xml.Unreadable as exc:
            raise BadNotice(f"the callback xml is unusable: {exc}", reference) from exc
        if chosen is None:
            # Nothing to read: a reason to ask ``payments``, no more.
            return Notice(Trigger.CALLBACK, reference=reference, kind=kind)
        transaction, others = chosen
        altapay_xml.check_agreement(params, transaction)
        result = altapay_xml.result(envelope, transaction, others)
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
                t for t in altapay_xml.transactions(envelope) if t.shop_orderid == attempt.reference
            ]
            chosen = altapay_xml.choose(
                transactions,
                transaction_id=attempt.data.get("transaction_id"),
                payment_id=attempt.gateway_id,
            )
        except altapay_xml.Unreadable as exc:
            raise GatewayError(
                f"altapay: payments answered an unusable transaction: {exc}"
            ) from exc
        if chosen is None:
            # No card was ever submitted for this shop_orderid (or not yet).
            return Result(outcome=Outcome.PENDING, codes="payments: no transaction yet")
        return altapay_xml.result(envelope, *chosen)

    # Back office ----------------------------------------------------------------------------
    def capture(self, attempt: AttemptRef, amount: int, journal: Journal) -> Result:
        fields = {"amount": to_two_decimals(amount, attempt.currency)}
        return self._transaction_action("captureReservation", attempt, journal, fields)

    def void(self, attempt: AttemptRef, journal: Journal) -> Result:
        return self._transaction_action("releaseReservation", attempt, journal, {})

    def refund(self, attempt: AttemptRef, amount: int, journal: Journal) -> Result:
        fields = {"amount": to_two_decimals(amount, attempt.currency)}
        return self._transaction_action("refundCapturedReservation", attempt, journal, fields)

    def release_rest(self, attempt: AttemptRef, journal: Journal) -> Result:
        # The same call as a void; on a partly captured reservation it releases what is left.
        # The answer's transaction keeps its captured status and reserved amount, so the part
        # given back is what was reserved and not captured when the gateway said Success.
        result = self._transaction_action("releaseReservation", attempt, journal, {})
        if result.amount is None or result.captured is None:
            return result
        return replace(result, released=max(result.amount - result.captured, 0))

    def _transaction_action(self, method, attempt, journal, fields) -> Result:
        transaction_id = self._transaction_id(attempt, journal)
        envelope = self._call(
            method, {"transaction_id": transaction_id, **fields}, journal, retry_safe=False
        )
        altapay_xml.refuse_on_error(envelope)
        if envelope.result != "Success":
            raise GatewayRefused(
                altapay_xml.merchant_message(envelope), code=envelope.result or "?"
            )
        try:
            chosen = altapay_xml.choose(
                altapay_xml.transactions(envelope), transaction_id=transaction_id
            )
        except altapay_xml.Unreadable as exc:
            raise GatewayError(
                f"altapay: {method} answered an unusable transaction: {exc}"
            ) from exc
        if chosen is None:
            # The action was done but the answer does not show the state it left: ask.
            return self.fetch_result(attempt, journal)
        return altapay_xml.result(envelope, *chosen)

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
            return altapay_xml.envelope(response.content)
        except altapay_xml.Unreadable as exc:
            raise GatewayError(f"altapay: {method} answered something unusable: {exc}") from exc


def _order_lines(lines: tuple[Line, ...], currency: str) -> list[dict[str, str]]:
    """The basket as ``orderLines`` rows: unit prices without VAT, each line's VAT beside it."""
    rows = []
    for position, line in enumerate(lines, start=1):
        common = {
            "description": line.name,
            "itemId": line.code or str(position),
            "goodsType": "shipment" if line.shipping else "item",
        }
        parts: list[tuple[int, int, int | None]]
        if line.vat_rate is None:  # VAT not known: the price as it is, no tax fields
            parts = [(line.quantity, line.unit_amount, None)]
        else:
            parts = _net_parts(line)
        for quantity, unit_price, tax in parts:
            row = {
                **common,
                "quantity": str(quantity),
                "unitPrice": to_two_decimals(unit_price, currency),
            }
            if tax is not None and line.vat_rate is not None:
                row["taxAmount"] = to_two_decimals(tax, currency)
                row["taxPercent"] = _percent(line.vat_rate)
            rows.append(row)
    return rows


def _net_parts(line: Line) -> list[tuple[int, int, int | None]]:
    """(quantity, unit price without VAT, VAT) for one line: one part where the net amount
    shares out over the units in whole minor units, else the units at the lower price and the
    units at one minor unit more, the line's VAT split between them by quantity."""
    net_unit, over = divmod(line.amount - line.vat, line.quantity)
    if over == 0:
        return [(line.quantity, net_unit, line.vat)]
    upper_vat = line.vat * over // line.quantity
    return [
        (line.quantity - over, net_unit, line.vat - upper_vat),
        (over, net_unit + 1, upper_vat),
    ]


def _percent(rate: int) -> str:
    """Hundredths of a percent as AltaPay's taxPercent: 2300 → "23", 1350 → "13.5"."""
    return format(Decimal(rate).scaleb(-2).normalize(), "f")


def _split_name(name: str) -> tuple[str, str]:
    parts = name.strip().rsplit(" ", 1)
    return (parts[0], parts[1]) if len(parts) == 2 else (parts[0], "")


_XML_TOKENS = re.compile(r"(<(\w*Token)>)[^<]*(</\2>)")


def _show(params: Mapping[str, str]) -> str:
    shown = redact(params)
    if isinstance(shown.get("xml"), str):
        shown["xml"] = _XML_TOKENS.sub(r"\1[redacted]\3", shown["xml"])
    return "\n".join(f"{k}={v}" for k, v in sorted(shown.items()))
