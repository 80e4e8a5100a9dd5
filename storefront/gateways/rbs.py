"""BPC/RBS eCommerce API (``register.do`` → ``formUrl``; ``getOrderStatusExtended.do`` decides).

Protocol rules this adapter follows (gateways.md §2):
- amounts are integers in minor units; currency is the ISO 4217 *numeric* code;
- ``orderNumber`` must be unique per merchant, so each attempt gets ``<order>_<n>``;
- the browser return carries only ``orderId`` and is unsigned: it is a trigger, nothing more;
- ``errorCode`` says whether the *query* worked, ``orderStatus`` what happened to the money;
  numbers may arrive as strings, and the legacy API capitalises its keys;
- callbacks are signed with HMAC-SHA256 over the sorted ``name;value;`` pairs, upper-case hex;
- the basket travels as ``orderBundle``, a JSON string in one form field (§2.1, §2.2):
  ``cartItems.items[]`` with ``positionId``, ``name``, ``quantity`` {value, measure},
  ``itemPrice`` (per unit) and ``itemAmount`` (the line, which must equal price × quantity),
  ``itemCode`` and ``tax`` {taxType, taxSum}.

``taxType`` is a code per VAT rate, not a percentage. The codes published with the protocol are
the Russian fiscal ones (0 no VAT, 1 VAT 0 %, 2 VAT 10 %, 3 VAT 18 %, 6 VAT 20 %, and 4, 5, 7 for
the computed 10/110, 18/118, 20/120 rates of prepayments); ``RBS_TAX_TYPES`` maps our rates to
them. A rate with no code (Ireland's 23 % and 13.5 %) is sent with its ``taxSum`` and no
``taxType``: a wrong code would misstate the VAT (the vendor's plugin sends 0, "no VAT"), and
an acquirer that needs a code for every line either publishes its own (``RBS_TAX_TYPES``) or
takes no basket (``RBS_BASKET`` off).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

from storefront.gateways.base import (
    AttemptRef,
    BadNotice,
    EventKind,
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
from storefront.gateways.http import HttpGateway, checksums_match
from storefront.i18n import N_
from storefront.money import UnsupportedCurrency, currency_info

# orderStatus → what it means for the money (gateways.md §2.4).
ORDER_STATUS = {
    0: Outcome.PENDING,  # registered, not paid yet
    1: Outcome.AUTHORIZED,  # held (two-phase), to be deposited
    2: Outcome.PAID,  # authorized and deposited
    3: Outcome.VOIDED,  # authorization reversed
    4: Outcome.REFUNDED,
    5: Outcome.PENDING,  # 3-D Secure in progress at the issuer
    6: Outcome.DECLINED,
    7: Outcome.PENDING,  # pending payment (newer API versions)
    8: Outcome.PAID,  # intermediate completion: partly deposited
}
# A successful callback's operation → what it reports (§2.6). A refund is left out: its amount
# is not in the notice, and a second partial refund must be read from the status query.
OPERATIONS = {
    "approved": Outcome.AUTHORIZED,
    "deposited": Outcome.PAID,
    "reversed": Outcome.VOIDED,
    "declinedByTimeout": Outcome.EXPIRED,
}
ACTION_CODE_EXPIRED = -2007  # the payment page session ran out
ACTION_CODE_CANCELLED = 10  # the cardholder cancelled
GATEWAY_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
MEASURE = "pcs"  # quantity.measure: free text naming the unit; every line is counted in pieces


def checksum(params: Mapping[str, str], key: str) -> str:
    """The callback checksum: drop ``checksum``/``sign_alias``, sort by name, HMAC the pairs."""
    signed = "".join(
        f"{name};{value};"
        for name, value in sorted(params.items())
        if name not in ("checksum", "sign_alias")
    )
    return hmac.new(key.encode(), signed.encode(), hashlib.sha256).hexdigest().upper()


class RbsGateway(HttpGateway):
    name = "rbs"
    title = "Card (BPC/RBS)"
    processor = "BPC/RBS"
    url_setting = "RBS_URL"
    required_settings = ("RBS_USERNAME", "RBS_PASSWORD", "RBS_CALLBACK_KEY")
    # One notification page; the operation it reports (deposited, reversed, …) is in the body.
    callback_kinds = ("notification",)
    # reverse.do cancels a payment within a limited time after it was made (§2.5), captured
    # or not; after that the gateway refuses and only refund.do remains.
    voids_captured = True
    # deposit.do works only on a held order (orderStatus 1) and reverse.do takes the whole
    # payment back (§2.5): after a partial deposit the rest can be neither captured nor
    # released alone, and the gateway gives it back to the card with the deposit.
    rest_after_capture = (
        "BPC/RBS takes one deposit per payment: deposit.do works only while the payment is "
        "held, so the rest cannot be captured later, and reverse.do cancels the whole payment, "
        "never only the rest. The gateway gave the rest back to the card with the deposit."
    )

    def __init__(
        self,
        *,
        url,
        username,
        password,
        callback_key,
        two_phase,
        basket=True,
        tax_types: Mapping[int, int] | None = None,
        **timeouts,
    ):
        super().__init__(**timeouts)
        self.base = url if url.endswith("/") else url + "/"
        self.credentials = {"userName": username, "password": password}
        self.callback_key = callback_key
        self.two_phase = two_phase
        self.send_basket = basket
        self.tax_types = dict(tax_types or {})

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RbsGateway:
        return cls(
            url=config["RBS_URL"],
            username=config["RBS_USERNAME"],
            password=config["RBS_PASSWORD"],
            callback_key=config["RBS_CALLBACK_KEY"],
            two_phase=config["RBS_TWO_PHASE"],
            basket=config["RBS_BASKET"],
            tax_types=config["RBS_TAX_TYPES"],
            connect_timeout=config["GATEWAY_CONNECT_TIMEOUT"],
            read_timeout=config["GATEWAY_READ_TIMEOUT"],
        )

    # Starting a payment -------------------------------------------------------------------
    def reference_for(self, order_number: str, seq: int) -> str:
        # A failed attempt's number cannot be registered again (errorCode 1), so every attempt
        # has its own; "_" is the separator the official plugins split on.
        return f"{order_number}_{seq}"

    def start(self, request: PaymentRequest, journal: Journal) -> Redirect:
        fields = {
            "orderNumber": request.reference,
            "amount": str(request.amount),
            "currency": currency_info(request.currency).numeric,
            "returnUrl": request.return_url,
            "failUrl": request.fail_url,
            # Sber-era deployments reject long descriptions and %, +, CR, LF in them.
            "description": re.sub(r"[%+\r\n]", " ", request.description)[:24],
            "email": request.email,
            "jsonParams": json.dumps({"email": request.email}),
        }
        # Any ISO 639-1 code will do (§2.2): a bank without that language shows its default.
        language = self.page_language(request.language)
        if language:
            fields["language"] = language
        if request.callback_urls.get("notification"):
            fields["dynamicCallbackUrl"] = request.callback_urls["notification"]
        bundle = self._order_bundle(request)
        if bundle is not None:
            fields["orderBundle"] = json.dumps(bundle, ensure_ascii=False)
        method = "registerPreAuth.do" if self.two_phase else "register.do"
        # Not retried: a lost answer to a registration that did happen would meet errorCode 1
        # and give no formUrl; the attempt is left unknown and the customer starts another.
        data = self._call(method, fields, journal, retry_safe=False)
        error = _int(_get(data, "errorCode"), default=0)
        order_id, form_url = _get(data, "orderId"), _get(data, "formUrl")
        if error != 0 or not order_id or not form_url:
            message = str(_get(data, "errorMessage") or "registration refused")
            raise GatewayRefused(message, code=str(error))
        if not GATEWAY_ID.match(str(order_id)) or not str(form_url).startswith(
            ("https://", "http://")
        ):
            raise GatewayError("rbs: register answered an unusable orderId or formUrl")
        return Redirect(gateway_id=str(order_id), url=str(form_url))

    def _order_bundle(self, request: PaymentRequest) -> dict[str, Any] | None:
        """The basket as ``orderBundle``, or None: turned off, empty, or (never from a frozen
        order) not adding up to the amount, which the gateway would refuse with the payment."""
        lines = request.lines
        if not self.send_basket or not lines or sum(x.amount for x in lines) != request.amount:
            return None
        items = []
        for position, line in enumerate(lines, start=1):
            item: dict[str, Any] = {
                "positionId": position,
                "name": line.name[:255] or "Item",
                "quantity": {"value": line.quantity, "measure": MEASURE},
                "itemPrice": line.unit_amount,
                "itemAmount": line.amount,
                "itemCode": (line.code or str(position))[:100],
            }
            if line.vat_rate is not None:
                tax: dict[str, int] = {"taxSum": line.vat}
                if line.vat_rate in self.tax_types:
                    tax = {"taxType": self.tax_types[line.vat_rate], **tax}
                item["tax"] = tax
            items.append(item)
        return {"cartItems": {"items": items}}

    # What came back -----------------------------------------------------------------------
    def parse_return(self, args: Mapping[str, str]) -> Notice:
        order_id = args.get("orderId") or args.get("mdOrder")
        if order_id is not None and not GATEWAY_ID.match(order_id):
            raise BadNotice("The payment reference in the link is malformed.")
        return Notice(trigger=Trigger.RETURN, gateway_id=order_id)

    def parse_callback(self, kind: str, form: Mapping[str, str], journal: Journal) -> Notice:
        params = {k: str(v) for k, v in form.items()}
        journal.record(
            EventKind.CALLBACK, f"callback {params.get('operation', '?')}", _show(params)
        )
        md_order, number = params.get("mdOrder"), params.get("orderNumber")
        if not md_order or not GATEWAY_ID.match(md_order) or not number:
            raise BadNotice("mdOrder and orderNumber are required", reference=number)
        if self.callback_key:
            given = params.get("checksum", "")
            expected = checksum(params, self.callback_key)
            if not checksums_match(given.upper(), expected):
                raise BadNotice("checksum missing or wrong", reference=number, gateway_id=md_order)
        # Even a signed callback only says that something happened: the status query decides.
        # What it says is kept, so that a repeat of what the shop holds needs no query.
        says = OPERATIONS.get(params.get("operation", "")) if params.get("status") == "1" else None
        return Notice(
            trigger=Trigger.CALLBACK,
            kind=kind,
            reference=number,
            gateway_id=md_order,
            says=says if self.callback_key else None,
        )

    def fetch_result(self, attempt: AttemptRef, journal: Journal) -> Result:
        query = {"orderId": attempt.gateway_id} if attempt.gateway_id else {}
        query = query or {"orderNumber": attempt.reference}
        data = self._call("getOrderStatusExtended.do", query, journal, retry_safe=True)
        return self._result(data, attempt)

    # Back office ----------------------------------------------------------------------------
    def capture(self, attempt: AttemptRef, amount: int, journal: Journal) -> Result:
        return self._order_action("deposit.do", attempt, journal, amount=amount)

    def void(self, attempt: AttemptRef, journal: Journal) -> Result:
        return self._order_action("reverse.do", attempt, journal)

    def refund(self, attempt: AttemptRef, amount: int, journal: Journal) -> Result:
        # externalRefundId makes a repeated refund the same refund (§2.5): the id names the
        # refund by what it starts from and its amount, so a request whose answer was lost and
        # that is sent again moves no money twice. expectedDepositedAmount is not sent: the
        # protocol's text can be read as the total deposited or as what is left after earlier
        # refunds, and deployments differ.
        refund_id = f"{attempt.reference}-{attempt.refunded}-{amount}"
        try:
            return self._order_action(
                "refund.do", attempt, journal, amount=amount, externalRefundId=refund_id
            )
        except GatewayRefused as refused:
            # Our view of the amounts may be stale: say what the gateway holds now.
            try:
                fresh = self.fetch_result(attempt, journal)
            except GatewayError:
                fresh = None  # the refusal stands; the amounts are read another time
            raise GatewayRefused(str(refused), refused.code, result=fresh) from refused

    def _order_action(self, method, attempt, journal, amount=None, **extra) -> Result:
        if not attempt.gateway_id:
            raise GatewayRefused("the gateway never registered this payment")
        fields = {"orderId": attempt.gateway_id, **extra}
        if amount is not None:
            fields["amount"] = str(int(amount))
        data = self._call(method, fields, journal, retry_safe=False)
        error = _int(_get(data, "errorCode"), default=None)
        if error != 0:
            message = str(_get(data, "errorMessage") or f"{method} refused")
            raise GatewayRefused(message, code=str(error))
        # A successful request does not prove the money moved: ask for the state it left.
        return self.fetch_result(attempt, journal)

    # Plumbing ---------------------------------------------------------------------------------
    def _call(self, method: str, fields: Mapping[str, str], journal: Journal, retry_safe: bool):
        body = {**self.credentials, **fields}
        response = self.send(
            "POST",
            self.base + method,
            journal,
            data=body,
            retry_safe=retry_safe,
            log_fields={**fields, "userName": self.credentials["userName"]},
        )
        if response.status_code != 200:
            raise GatewayError(f"rbs: HTTP {response.status_code} from {method}")
        try:
            data = response.json()
        except ValueError as exc:
            raise GatewayError(f"rbs: {method} answered something that is not JSON") from exc
        if not isinstance(data, dict):
            raise GatewayError(f"rbs: {method} answered JSON that is not an object")
        return data

    def _result(self, data: Mapping[str, Any], attempt: AttemptRef) -> Result:
        error = _int(_get(data, "errorCode"), default=0)
        status = _int(_get(data, "orderStatus"), default=None)
        if error != 0 or status is None:
            # errorCode only says the query failed (not found, access denied, system error):
            # it says nothing about the money, so the outcome is unknown, never "failed".
            message = _get(data, "errorMessage") or "no orderStatus"
            raise GatewayError(f"rbs: status query failed: errorCode={error} {message}")
        action = _int(_get(data, "actionCode"), default=None)
        outcome = ORDER_STATUS.get(status, Outcome.UNKNOWN)
        if outcome is Outcome.DECLINED and action == ACTION_CODE_EXPIRED:
            outcome = Outcome.EXPIRED
        elif outcome is Outcome.DECLINED and action == ACTION_CODE_CANCELLED:
            outcome = Outcome.CANCELLED
        card = _get(data, "cardAuthInfo") or {}
        amounts = _get(data, "paymentAmountInfo") or {}
        return Result(
            outcome=outcome,
            gateway_id=_md_order(data) or attempt.gateway_id,
            reference=_str(_get(data, "orderNumber")),
            amount=_int(_get(data, "amount"), default=None),
            currency=_alpha(_get(data, "currency")),
            captured=_int(_get(amounts, "depositedAmount"), default=None),
            refunded=_int(_get(amounts, "refundedAmount"), default=None),
            masked_card=str(_get(card, "maskedPan") or _get(data, "Pan") or "")[:32],
            gateway_ref=str(_get(card, "approvalCode") or _get(data, "approvalCode") or "")[:64],
            codes=f"orderStatus={status} actionCode={action} errorCode={error}",
            message=_customer_message(outcome, _get(data, "actionCodeDescription")),
        )


def _get(data: Mapping[str, Any], key: str) -> Any:
    """A field by its documented name, or as the legacy API capitalises it."""
    if not isinstance(data, Mapping):
        return None
    if key in data:
        return data[key]
    return data.get(key[:1].upper() + key[1:])


def _int(value: Any, default):
    """Numbers come as JSON numbers or as strings, depending on the deployment."""
    if isinstance(value, bool) or value is None or value == "":
        return default
    try:
        return int(str(value).strip())
    except ValueError:
        return default


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _alpha(numeric: Any) -> str | None:
    if numeric in (None, ""):
        return None
    try:
        return currency_info(str(numeric)).code
    except UnsupportedCurrency:
        return f"?{numeric}"  # kept visible, and never equal to an order's currency


def _md_order(data: Mapping[str, Any]) -> str | None:
    for attribute in _get(data, "attributes") or []:
        if isinstance(attribute, Mapping) and attribute.get("name") == "mdOrder":
            return str(attribute.get("value"))
    return None


def _customer_message(outcome: Outcome, description: Any) -> str:
    if outcome is Outcome.EXPIRED:
        return N_("The payment page timed out before the payment was completed.")
    if outcome is Outcome.CANCELLED:
        return N_("The payment was cancelled on the payment page.")
    if outcome is Outcome.DECLINED:
        # actionCodeDescription is the processing bank's text, written for cardholders.
        text = str(description or "").strip()
        return text[:200] if text else N_("The card was declined.")
    return ""


def _show(params: Mapping[str, str]) -> str:
    return "\n".join(
        f"{k}={'[redacted]' if k == 'checksum' else v}" for k, v in sorted(params.items())
    )
