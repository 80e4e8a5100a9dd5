"""InterPay Web-Redirect (``StartSession`` → hosted page → ``GetResult`` decides → ``Ack``).

Protocol rules this adapter follows (gateways.md §1):
- every message is a flat set of upper-case fields with ``TERMID`` first, sent as a JSON object
  (current) or as a ``NAME=value&…`` string (legacy), to svra and, failing that, to svrb;
- only ``99xx``/``9100``/``9101`` and no answer at all are worth trying again, on the other server;
- ``AMT`` is dollars.cents with two decimals: an integer would be read as cents;
- there is no currency field: the terminal fixes it (CAD unless configured otherwise);
- ``REQUESTID`` (5–20 digits) is unique per terminal, so a repeated StartSession meets
  ``9012 DUPLICATE REQUESTID`` instead of opening a second session;
- the browser return (``SecureID``, ``Status``) is unsigned: a trigger, never evidence;
- an approval not acknowledged within 3 minutes of the return is reversed (``9008``);
- StartSession has no field for order lines or VAT (§1.3: ``DESC`` is one free text of at most
  60 characters), so the basket (``PaymentRequest.lines``) is not sent: only the total, whose
  lines and delivery the shop's receipt shows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from storefront.gateways.base import (
    AttemptRef,
    BadNotice,
    GatewayError,
    GatewayRefused,
    Journal,
    Notice,
    Outcome,
    PaymentRequest,
    Redirect,
    Result,
    Trigger,
)
from storefront.gateways.http import HttpGateway
from storefront.i18n import N_
from storefront.money import UnsupportedCurrency, from_major, to_two_decimals

OK = "0000"
DUPLICATE_REQUESTID = "9012"
NO_RESULT_YET = "9015"
ACCESS_DENIED = "1001"  # inside the card-decline range, but a terminal problem, not a decline
# GetResult CODE → outcome (gateways.md §1.4); 0000 depends on ACK, 0001–1299 are declines.
RESULT_CODES = {
    "9004": Outcome.EXPIRED,  # customer timed out on the page
    "9005": Outcome.CANCELLED,  # customer cancelled on the page
    "9006": Outcome.EXPIRED,  # session invalid or expired
    "9007": Outcome.DECLINED,  # not completed / not approved
    "9008": Outcome.VOIDED,  # not acknowledged in time: reversed, never charged
}
ACK_CODES = {OK: Outcome.PAID, "9007": Outcome.DECLINED, "9008": Outcome.VOIDED}
MESSAGES = {
    Outcome.DECLINED: N_("The card was declined."),
    Outcome.CANCELLED: N_("The payment was cancelled on the payment page."),
    Outcome.EXPIRED: N_("The payment page timed out before the payment was completed."),
    Outcome.VOIDED: N_(
        "The payment was not completed in time and was reversed; nothing was charged."
    ),
}
SECUREID = re.compile(r"[A-Za-z0-9]{1,64}")
FOUR_DIGITS = re.compile(r"[0-9]{4}")  # CODE and Status
REQUESTID = re.compile(r"[0-9]{5,20}")
FIELD_NAME = re.compile(r"[A-Z0-9_]+")


class InterPayGateway(HttpGateway):
    name = "interpay"
    title = "Card (InterPay)"
    processor = "InterPay"
    url_setting = "INTERPAY_URL"
    # StartSession's LANG is E (English, the default) or F (French) and nothing else (§1.3):
    # an order in German or Russian gets InterPay's English page.
    page_languages = frozenset({"en", "fr"})
    required_settings = ("INTERPAY_TERMID", "INTERPAY_PASS")
    supports_refund = False  # Web-Redirect has no refund message
    partial_capture = False  # Ack confirms the whole authorization or nothing
    capture_label = "Confirm payment (Ack)"
    # The reconciler's timing for customers who never came back (payments.reconciler): a
    # GetResult before the page finished gets 9015 and a second one cancels the session, while
    # an approval must be acknowledged within 3 minutes. So: ask once 150 s after the hand-off
    # (anyone who paid by then is still inside the Ack window), and after an undecided answer
    # not again until the hosted page must have timed out (its limit is not published).
    first_check_after = 150.0
    recheck_pending_after = 1200.0

    def __init__(
        self,
        *,
        urls,
        termid,
        password,
        ack,
        ack_in_getresult,
        currency,
        encoding,
        **timeouts,
    ):
        super().__init__(**timeouts)
        if not 1 <= len(urls) <= 2:
            raise ValueError("INTERPAY_URL must hold one or two server URLs")
        if encoding not in ("json", "legacy"):
            raise ValueError("INTERPAY_ENCODING must be json or legacy")
        self.servers = [u if u.endswith("/") else u + "/" for u in urls]
        self.termid = termid
        self.password = password
        self.ack = ack
        self.ack_in_getresult = ack_in_getresult
        self.currency = currency
        self.encoding = encoding

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> InterPayGateway:
        return cls(
            urls=cls.urls(config),
            termid=config["INTERPAY_TERMID"],
            password=config["INTERPAY_PASS"],
            ack=config["INTERPAY_ACK"],
            ack_in_getresult=config["INTERPAY_ACK_IN_GETRESULT"],
            currency=config["INTERPAY_CURRENCY"],
            encoding=config["INTERPAY_ENCODING"],
            connect_timeout=config["GATEWAY_CONNECT_TIMEOUT"],
            read_timeout=config["GATEWAY_READ_TIMEOUT"],
        )

    @classmethod
    def urls(cls, config: Mapping[str, Any]) -> list[str]:
        # The main server, then the backup one, separated by a space (§1.2).
        return str(config.get(cls.url_setting) or "").split()

    @classmethod
    def config_problems(cls, config: Mapping[str, Any]) -> list[str]:
        # No currency field: the terminal charges its own currency whatever we send.
        if config["INTERPAY_CURRENCY"] != config["CURRENCY"]:
            return [
                f"InterPay's terminal charges {config['INTERPAY_CURRENCY']} but the shop sells "
                f"in {config['CURRENCY']}: take interpay out of STOREFRONT_GATEWAYS or use a "
                "terminal in the shop's currency (STOREFRONT_INTERPAY_CURRENCY)"
            ]
        return []

    @property
    def acknowledges(self) -> bool:
        """True when an authorization becomes a payment only by our ``Ack`` (payments.settle)."""
        return self.ack and not self.ack_in_getresult

    # Starting a payment -------------------------------------------------------------------
    def reference_for(self, order_number: str, seq: int) -> str:
        # REQUESTID is 5–20 digits and unique per terminal: the order's digits, then the
        # attempt as two digits, so every attempt of every order has its own.
        digits = re.sub(r"[^0-9]", "", order_number).zfill(3)
        if not 1 <= seq <= 99 or len(digits) > 18:
            raise ValueError(f"no InterPay REQUESTID for order {order_number!r} attempt {seq}")
        return f"{digits}{seq:02d}"

    def start(self, request: PaymentRequest, journal: Journal) -> Redirect:
        fields = self._session_fields(request)
        reply, retried = self._exchange("StartSession", fields, journal)
        code = reply["CODE"]
        if code == DUPLICATE_REQUESTID and retried:
            # The first call did open a session that we never heard about. Opening another for
            # the same REQUESTID is impossible and a new one is the caller's decision: unknown.
            raise GatewayError("interpay: StartSession answer lost; the session's id is unknown")
        if code != OK:
            raise GatewayRefused(reply.get("TEXT") or "StartSession refused", code=code)
        secure_id, url = reply.get("SECUREID", ""), reply.get("URL", "")
        if not SECUREID.fullmatch(secure_id) or not url.startswith(("https://", "http://")):
            raise GatewayError("interpay: StartSession answered an unusable SECUREID or URL")
        return Redirect(gateway_id=secure_id, url=url)

    def _session_fields(self, request: PaymentRequest) -> dict[str, str]:
        if request.currency.upper() != self.currency:
            # No currency field: the terminal charges its own currency whatever we send.
            raise GatewayRefused(f"the InterPay terminal charges {self.currency} only")
        if not REQUESTID.fullmatch(request.reference):
            raise GatewayRefused("InterPay's REQUESTID must be 5 to 20 digits")
        if len(request.email) > 60 or "\\" in request.email:
            raise GatewayRefused("InterPay takes an email address of at most 60 characters")
        try:
            amount = to_two_decimals(request.amount, self.currency)
        except (ValueError, UnsupportedCurrency) as exc:
            raise GatewayRefused(str(exc)) from exc
        return {
            # Always two decimals: "integers are read as cents" (§1.7).
            "AMT": amount,
            "REQUESTID": request.reference,
            "CUSTEMAIL": request.email,
            "CUSTNAME": _clean(request.customer_name, 40),
            "DESC": _clean(request.description, 60),
            "SUCCESSURL": request.return_url,
            "FAILUREURL": request.fail_url,
            "LANG": "F" if self.page_language(request.language) == "fr" else "E",
        }

    # What came back -----------------------------------------------------------------------
    def parse_return(self, args: Mapping[str, str]) -> Notice:
        # Mixed case in the redirect (SecureID, Status); accept any. Status decides nothing.
        values = {str(k).lower(): str(v) for k, v in args.items()}
        secure_id = values.get("secureid") or None
        status = values.get("status", "")
        if secure_id is not None and not SECUREID.fullmatch(secure_id):
            raise BadNotice("The payment reference in the link is malformed.")
        if status and not FOUR_DIGITS.fullmatch(status):
            raise BadNotice("The payment status in the link is malformed.", gateway_id=secure_id)
        # A failed return may lack SecureID (§1.3): the attempt is still known by its URL token.
        return Notice(trigger=Trigger.RETURN, gateway_id=secure_id, kind=status)

    def fetch_result(self, attempt: AttemptRef, journal: Journal) -> Result:
        return self._get_result(attempt, journal, ack=self.ack and self.ack_in_getresult)

    def _get_result(self, attempt: AttemptRef, journal: Journal, ack: bool) -> Result:
        if not attempt.gateway_id:
            raise GatewayError("interpay: no SECUREID is known for this payment")
        fields = {"SECUREID": attempt.gateway_id, **({"ACK": "Y"} if ack else {})}
        # Tried on the other server only when there was no answer: a 9015 must not be
        # repeated at once, since a second early poll cancels the session (§1.5).
        reply, _ = self._exchange("GetResult", fields, journal)
        return self._result(reply)

    def _result(self, reply: Mapping[str, str]) -> Result:
        code, text, ack = reply["CODE"], reply.get("TEXT", ""), reply.get("ACK", "")
        outcome = self._outcome(code, text, ack)
        money = outcome in (Outcome.PAID, Outcome.AUTHORIZED)
        return Result(
            outcome=outcome,
            gateway_id=reply.get("SECUREID") or None,
            reference=reply.get("REQUESTID") or None,
            amount=self._amount(reply.get("AMT", "")),
            currency=self.currency,
            captured=self._amount(reply.get("AMT", "")) if outcome is Outcome.PAID else None,
            masked_card=reply.get("CARDMASK", "")[:32],
            gateway_ref=reply.get("AUTH", "")[:64] if money else "",
            codes=f"CODE={code} TEXT={text} ACK={ack}"[:200],
            message=MESSAGES.get(outcome, ""),
            data={"refnum": reply["REFNUM"]} if reply.get("REFNUM") else {},
        )

    def _outcome(self, code: str, text: str, ack: str) -> Outcome:
        if code == OK:
            # Approved but not acknowledged is only held: it is reversed unless we Ack (§1.5).
            # A terminal without Ack captures at once.
            return Outcome.PAID if ack == "Y" or not self.ack else Outcome.AUTHORIZED
        if code == NO_RESULT_YET:
            # "CANCELLED SEQ": the early poll cancelled the session; otherwise not decided yet.
            return Outcome.CANCELLED if "CANCEL" in text.upper() else Outcome.PENDING
        if code in RESULT_CODES:
            return RESULT_CODES[code]
        if code != ACCESS_DENIED and 1 <= int(code) <= 1299:
            return Outcome.DECLINED  # issuer declines; their text varies (§1.4)
        raise GatewayError(f"interpay: GetResult answered CODE={code} {text}"[:200])

    def _amount(self, text: str) -> int | None:
        # Only dollars.cents is unambiguous: a bare integer could be dollars or cents (§1.7).
        if "." not in text:
            return None
        try:
            return from_major(text, self.currency)
        except ValueError:
            return None

    # Acknowledging ----------------------------------------------------------------------------
    def acknowledge(self, attempt: AttemptRef, journal: Journal) -> Result | None:
        if not self.acknowledges:
            return None  # captured already: no Ack on this terminal, or ACK=Y in GetResult
        return self._ack(attempt, "Y", journal)

    def capture(self, attempt: AttemptRef, amount: int, journal: Journal) -> Result:
        if amount != attempt.amount:
            # Ack captures the whole authorization or nothing; there is no amount field.
            raise GatewayRefused("InterPay captures the full amount only, by Ack within 3 minutes")
        return self._ack(attempt, "Y", journal)

    def void(self, attempt: AttemptRef, journal: Journal) -> Result:
        return self._ack(attempt, "N", journal)  # ACK=N reverses the authorization

    def refund(self, attempt: AttemptRef, amount: int, journal: Journal) -> Result:
        raise GatewayRefused(
            "InterPay Web-Redirect has no refund message; refund from the InterPay back office"
        )

    def _ack(self, attempt: AttemptRef, flag: str, journal: Journal) -> Result:
        if attempt.gateway_id:
            fields = {"SECUREID": attempt.gateway_id, "ACK": flag}
        elif attempt.data.get("refnum"):
            fields = {"REFNUM": str(attempt.data["refnum"]), "ACK": flag}
        else:
            raise GatewayRefused("InterPay never confirmed this payment's session")
        # The same Ack twice gets the same answer, so a lost one is sent again (other server).
        reply, _ = self._exchange("Ack", fields, journal)
        code, text = reply["CODE"], reply.get("TEXT", "")
        outcome = ACK_CODES.get(code)
        if outcome is None:
            raise GatewayError(f"interpay: Ack answered CODE={code} {text}"[:200])
        if attempt.gateway_id:
            # The Ack reply names no amount and no payment: GetResult says what it left.
            try:
                return self._get_result(attempt, journal, ack=False)
            except GatewayError:
                if outcome is Outcome.PAID:
                    raise  # money with no amount we can bind to the order: ask again later
        # Known by REFNUM only: a capture whose amount nobody confirmed goes to the operator
        # (settle holds money it cannot bind to the order).
        return Result(
            outcome=outcome,
            currency=self.currency,
            codes=f"Ack CODE={code} TEXT={text}"[:200],
            message=MESSAGES.get(outcome, ""),
        )

    # Plumbing ---------------------------------------------------------------------------------
    def _exchange(
        self, action: str, fields: Mapping[str, str], journal: Journal
    ) -> tuple[dict[str, str], bool]:
        """Send one message; on no answer or a 99xx/9100/9101, once more on the other server.

        Every message is safe to send twice: StartSession by its REQUESTID (a repeat meets
        9012), GetResult and Ack by the SECUREID they name. Returns the reply and whether it
        came from the second try.
        """
        message = {"TERMID": self.termid, "PASS": self.password, "TYPE": "W", "ACTION": action}
        message.update(fields)
        servers = self.servers if len(self.servers) == 2 else self.servers * 2
        for n, url in enumerate(servers):
            reply = self._post(url, message, journal)
            if reply is not None and not _server_fault(reply["CODE"]):
                return reply, n > 0
            if n + 1 < len(servers):
                journal.record("error", f"{action}: no usable answer; trying {servers[n + 1]}")
        raise GatewayError(f"interpay: {action} got no usable answer from any server")

    def _post(self, url: str, message: Mapping[str, str], journal: Journal) -> dict | None:
        """One exchange with one server: the reply, or None when the server did not answer.

        :raise GatewayRefused: a value the legacy encoding cannot carry unambiguously.
        """
        shown = {k: v for k, v in message.items() if k != "PASS"}
        body: dict[str, Any]
        if self.encoding == "json":
            body = {"json_body": dict(message), "headers": {"Accept": "application/json"}}
        else:
            # The legacy reply echoes values unescaped, split on "&": a value holding one
            # would read back as fields of its own. Such a value is never sent.
            unsafe = sorted(name for name, value in message.items() if "&" in str(value))
            if unsafe:
                raise GatewayRefused(
                    f"InterPay's legacy encoding cannot carry '&' in {', '.join(unsafe)}"
                )
            # TERMID must be the first field of the string (§1.2); the dict keeps that order.
            body = {
                "data": urlencode(message),
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            }
        try:
            response = self.send(
                "POST", url, journal, log_fields=shown, operation=message["ACTION"], **body
            )
        except GatewayError:
            return None
        if response.status_code >= 500:
            return None
        if response.status_code != 200:
            raise GatewayError(f"interpay: HTTP {response.status_code} from {_host(url)}")
        reply = _parse(response.text)
        if not FOUR_DIGITS.fullmatch(reply.get("CODE", "")):
            raise GatewayError(f"interpay: {message['ACTION']} answered no CODE")
        return reply


def _server_fault(code: str) -> bool:
    # 9100/9101 say "switch to the backup server and retry"; 99xx is the network class (§1.4).
    return code in ("9100", "9101") or code.startswith("99")


def _parse(text: str) -> dict[str, str]:
    """A reply in either encoding: a JSON object, or ``NAME=value&…``. Anything else (an HTML
    maintenance page, a truncated body) raises :class:`GatewayError`."""
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise GatewayError("interpay: the reply is not valid JSON") from exc
        if not isinstance(data, dict):
            raise GatewayError("interpay: the reply is not a JSON object")
        reply = {str(k).upper(): "" if v is None else str(v) for k, v in data.items()}
        code = data.get("CODE")
        if isinstance(code, int) and not isinstance(code, bool):
            reply["CODE"] = f"{code:04d}"  # a CODE sent as the JSON number 0 is "0000"
        return reply
    reply = {}
    # Values come as sent, unescaped (a URL keeps its "?SecureID="): split on & and the first =.
    for part in text.split("&"):
        name, equals, value = part.partition("=")
        if not equals or not FIELD_NAME.fullmatch(name.strip().upper()):
            raise GatewayError("interpay: the reply is neither JSON nor NAME=value pairs")
        key = name.strip().upper()
        if key in reply:
            # A value that carried "&NAME=" would otherwise make a field of its own (an echoed
            # email could set CODE or ACK): a reply naming a field twice is not read at all.
            raise GatewayError(f"interpay: the reply names {key} more than once")
        reply[key] = value
    return reply


def _clean(text: str, limit: int) -> str:
    # Backslashes are forbidden in every field (§1.7).
    return text.replace("\\", "/").strip()[:limit]


def _host(url: str) -> str:
    return re.sub(r"^[a-z]+://([^/]+).*$", r"\1", url)
