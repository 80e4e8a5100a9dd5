"""AltaPay Merchant API (formerly Pensio): the API, the hosted payment page and its callbacks.

Routes (under ``/altapay``):

``POST /merchant/API/<method>``  HTTP Basic; form fields with PHP brackets; ``APIResponse`` XML.
    ``createPaymentRequest``, ``captureReservation``, ``releaseReservation``,
    ``refundCapturedReservation``, ``payments``, ``login``, ``getTerminals``, and
    ``testConnection`` (no auth). Faults are armed per method name (``faults.faultable``).
``GET|POST /merchant.php/API/requestForm?pid=<id>``  the hosted payment page. It shows the
    merchant's ``config[callback_form]`` page (fetched server-side, JavaScript stripped, card
    fields injected into ``form#PensioPaymentForm``) or a built-in page. On submit the gateway
    itself POSTs the result to ``callback_ok``/``fail``/``open`` and relays the shop's answer.
``GET /eCommerce.php/API/embeddedPaymentWindow?pid=<id>``  sends the browser to the page above.

Test data (gateways.md §4.3; AltaPay's own amount convention where it has one):
amount cents ``.66`` → Failed, ``.67`` → Error, ``.68`` → Open, then ``callback_notification``
after ``altapay:open_delay`` seconds (default 1); card ending ``0566`` → declined (Failed),
``0667`` → Error, ``0668`` → Open (the same paths by card, for any amount); any other
Luhn-valid card approves; capturing exactly 7.66/7.67 fails/errs, releasing a reservation of
8.66/8.67 fails/errs, capturing 19.66 takes ``altapay:slow_capture_seconds`` (default 20). The
back-office amounts are exempt from the page's cents rules so that they can be reserved.

Run-time settings (``POST /__control/settings``): ``altapay:connect_timeout`` and
``altapay:read_timeout`` (the gateway's 7 s / 28 s callback timeouts, from
``SANDBOX_ALTAPAY_CONNECT_TIMEOUT``/``_READ_TIMEOUT``), ``altapay:open_delay``,
``altapay:slow_capture_seconds``. Two shapes as the live API answers them, each with a setting
for the other shape clients meet (§3.1): an answer with a Header ErrorCode carries an empty
``<Body/>`` (``altapay:error_body`` false: no Body at all, as in AltaPay's published example);
a ``payments`` call that matches nothing leaves ``<Transactions>`` out and echoes its filter in
``ResultFilter`` (``altapay:payments_no_match`` "empty": an empty ``<Transactions/>``).

Callback faults (op ``callback``, taken by the next result callback or notification):
``bad_checksum``, ``no_checksum``, ``tamper_amount`` (``amount``: posted amount and xml changed
together, checksum valid), ``tamper_currency`` (``currency``, likewise), ``other_orderid``
(``orderid``, likewise), ``malformed_xml``, ``duplicate`` (``copies``, default 2),
``fail_after_success`` (after relaying ``ok``, ``callback_fail`` is posted for the same payment).
Op ``refundCapturedReservation`` also takes ``failed`` {message}: the refund answers Failed.

Back office: a reservation is captured in as many parts as wanted up to what is reserved;
``releaseReservation`` releases what is reserved and not captured — the whole reservation
(status ``released``), or the rest of a partly captured one, which keeps its status and amounts
and records the part given back as ``released`` (nothing more can then be captured).

The basket: ``orderLines`` that do not add up to the amount are refused (Header ErrorCode
200); a request keeps them as sent (``order_lines``) and read (``basket``: each line's
fields and its ``amount``), and the payment page lists them.

State kinds: ``altapay_request`` (by PaymentRequestId), ``altapay_transaction`` (by
TransactionId), ``altapay_callback`` (every page callback posted and the shop's answer).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import html
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from typing import cast
from urllib.parse import urljoin
from xml.etree.ElementTree import Element, SubElement, indent, tostring

import requests
from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)

from sandbox import cards, delivery
from sandbox.faults import MAX_SLEEP, faultable, protocol_fault, store, this_app
from sandbox.store import Store

bp = Blueprint("altapay", __name__)

REQUESTS = "altapay_request"
TRANSACTIONS = "altapay_transaction"
CALLBACKS = "altapay_callback"
ORDER_IDS = "altapay_orderid"

API_VERSION = "20170228"
SHOP_NAME = "Storefront Sandbox Shop"
FORM_ID = "PensioPaymentForm"
REQUEST_ERROR = "200"  # Header ErrorCode of a malformed call: the one value AltaPay documents
SHOP_ORDERID = re.compile(r"^[a-zA-Z0-9-]{1,100}$")
AMOUNT = re.compile(r"^\d{1,12}(\.\d{1,2})?$")
MAX_ORDERID_USES = 4
MAX_PAYMENTS_ROWS = 10
PAYMENT_TYPES = (
    "payment",
    "paymentAndCapture",
    "subscription",
    "subscriptionAndCharge",
    "subscriptionAndReserve",
    "verifyCard",
)
# The payment page languages (ISO 639-1); another one is an error (§3.2).
LANGUAGES = frozenset(
    re.findall(
        r"[a-z]{2}",
        "cs da de ee el en es et fi fo fr hr hu is it ja lt lv nb nl no pl pt ro ru sk sl sv th "
        "tr zh",
    )
)
CONFIG_KEYS = (
    "callback_form",
    "callback_ok",
    "callback_fail",
    "callback_redirect",
    "callback_open",
    "callback_notification",
    "callback_verify_order",
    "callback_mobile_app_redirect",
)

# ISO 4217 alphabetic → numeric, for the currencies a sandbox terminal accepts.
_ISO_4217 = """
AUD 036 BGN 975 BRL 986 CAD 124 CHF 756 CNY 156 CZK 203 DKK 208 EUR 978 GBP 826 HKD 344
HUF 348 ISK 352 JPY 392 KWD 414 NOK 578 NZD 554 PLN 985 RON 946 SEK 752 SGD 702 TRY 949
USD 840 ZAR 710
"""
NUMERIC = dict(re.findall(r"([A-Z]{3}) (\d{3})", _ISO_4217))
ALPHA = {numeric: alpha for alpha, numeric in NUMERIC.items()}

# Amounts (in cents) reserved for back-office tests: the page approves them whatever the cents.
CAPTURE_FAILS, CAPTURE_ERRS, CAPTURE_SLOW = 766, 767, 1966
RELEASE_FAILS, RELEASE_ERRS = 866, 867
BACK_OFFICE_AMOUNTS = {CAPTURE_FAILS, CAPTURE_ERRS, CAPTURE_SLOW, 1967, RELEASE_FAILS, RELEASE_ERRS}

# Body Result → the callback's ``status`` field (§3.4).
CALLBACK_STATUS = {"Success": "succeeded", "Failed": "failed", "Error": "error", "Open": "open"}
OPEN_STATUS = "open"  # our TransactionStatus for an accepted-but-not-final payment
MONEY_STATUSES = ("preauth", "captured", "bank_payment_finalized", "refunded")
TEST_CARDS = (
    ("4111111111111111", "Visa: approved"),
    ("5555555555554444", "Mastercard: approved"),
    ("4180000000000566", "Visa: declined by the issuer (any card ending 0566)"),
    ("4180000000080667", "Visa: the acquirer errs (any card ending 0667)"),
    ("4180000000070668", "Visa: open, settled later by notification (any card ending 0668)"),
    ("4111111111111112", "fails the Luhn check: the page asks again"),
)


class ApiError(Exception):
    """A malformed call: answered with a non-zero Header ErrorCode and no Body (or an empty one,
    with the ``altapay:error_body`` setting)."""

    def __init__(self, message: str, code: str = REQUEST_ERROR):
        super().__init__(message)
        self.code = code


# Settings ------------------------------------------------------------------------------------
def _store_of(app) -> Store:
    return app.extensions["sandbox_store"]


def _timeouts(app) -> tuple[float, float]:
    """The gateway's callback timeouts: 7 s to connect, 28 s for the answer (§3.7)."""
    s = _store_of(app)
    connect = s.setting("altapay:connect_timeout", app.config["SANDBOX_ALTAPAY_CONNECT_TIMEOUT"])
    read = s.setting("altapay:read_timeout", app.config["SANDBOX_ALTAPAY_READ_TIMEOUT"])
    return float(connect), float(read)


def _secret(app) -> str:
    return str(app.config["SANDBOX_ALTAPAY_SECRET"] or "")


def _app():
    return this_app()


# Money and protocol values ---------------------------------------------------------------------
def _cents(text: str) -> int:
    whole, _, fraction = text.partition(".")
    return int(whole) * 100 + int((fraction + "00")[:2])


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _currency(code: str) -> tuple[str, str] | None:
    """(numeric, alpha) for an ISO 4217 code in either form; AltaPay takes both (§3.2)."""
    code = code.strip().upper()
    if code in NUMERIC:
        return NUMERIC[code], code
    if code.isdigit() and code.zfill(3) in ALPHA:
        return code.zfill(3), ALPHA[code.zfill(3)]
    return None


def checksum(amount: str, currency: str, shop_orderid: str, secret: str) -> str:
    """md5 of the sorted ``amount,currency,secret,shop_orderid`` pairs (§3.5), lower-case hex."""
    pairs = {"amount": amount, "currency": currency, "shop_orderid": shop_orderid, "secret": secret}
    text = ",".join(f"{key}={pairs[key]}" for key in sorted(pairs))
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # noqa: S324 - the protocol's choice


def _nested(form: Mapping[str, str]) -> dict:
    """PHP bracket names to nested dicts: ``config[callback_ok]`` → {"config": {"callback_ok"}}."""
    out: dict = {}
    for key, value in form.items():
        match = re.fullmatch(r"([^\[\]]+)((?:\[[^\[\]]*\])*)", key)
        if not match:
            continue
        path = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[path[-1]] = value
    return out


def _stamp(now: float, api: bool = True) -> str:
    moment = datetime.fromtimestamp(now, tz=UTC)
    return moment.isoformat(timespec="seconds") if api else moment.strftime("%Y-%m-%d %H:%M:%S")


# XML -------------------------------------------------------------------------------------------
def _el(parent: Element, tag: str, text: object = "", **attrs: str) -> Element:
    node = SubElement(parent, tag, attrs)
    node.text = "" if text is None else str(text)
    return node


def _api_response(
    path: str, body: Element | None, now: float, code: str = "0", message: str = ""
) -> str:
    root = Element("APIResponse", version=API_VERSION)
    header = SubElement(root, "Header")
    _el(header, "Date", _stamp(now))
    _el(header, "Path", f"API/{path}")
    _el(header, "ErrorCode", code)
    _el(header, "ErrorMessage", message)
    if body is not None:
        root.append(body)
    indent(root, space="    ")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + tostring(root, encoding="unicode") + "\n"


def _body(*fields: tuple[str, object], transactions: list[dict] | None = None) -> Element:
    body = Element("Body")
    for tag, text in fields:
        _el(body, tag, text)
    if transactions is not None:
        holder = SubElement(body, "Transactions")
        for txn in transactions:
            holder.append(_transaction_xml(txn))
    return body


def _outcome_fields(txn: dict) -> list[tuple[str, object]]:
    fields: list[tuple[str, object]] = [("Result", txn["result"])]
    if txn["result"] != "Success":
        fields += [
            ("MerchantErrorMessage", txn.get("merchant_error", "")),
            ("CardHolderErrorMessage", txn.get("cardholder_error", "")),
            ("CardHolderMessageMustBeShown", "true" if txn.get("must_show") else "false"),
        ]
    return fields


def _transaction_xml(txn: dict) -> Element:
    t = Element("Transaction")
    _el(t, "TransactionId", txn["id"])
    _el(t, "PaymentId", txn["payment_id"])
    _el(t, "AuthType", txn["auth_type"])
    _el(t, "CardStatus", "Valid" if txn.get("masked_pan") else "NoCreditCard")
    if txn.get("expiry_year"):
        expiry = SubElement(t, "CreditCardExpiry")
        _el(expiry, "Year", txn["expiry_year"])
        _el(expiry, "Month", txn["expiry_month"])
    _el(t, "CreditCardToken", txn.get("card_token", ""))
    _el(t, "CreditCardMaskedPan", txn.get("masked_pan", ""))
    _el(t, "IsTokenized", "false")
    _el(t, "ThreeDSecureResult", "Not_Applicable")
    _el(t, "LiableForChargeback", "Merchant")
    _el(t, "CVVCheckResult", "Matched" if txn.get("masked_pan") else "Not_Applicable")
    _el(t, "BlacklistToken", txn.get("blacklist_token", ""))
    _el(t, "ShopOrderId", txn["shop_orderid"])
    _el(t, "Shop", SHOP_NAME)
    _el(t, "Terminal", txn["terminal"])
    _el(t, "TransactionStatus", txn["status"])
    _el(t, "ReasonCode", "NONE")
    _el(t, "MerchantCurrency", txn["currency"])
    _el(t, "MerchantCurrencyAlpha", txn["currency_alpha"])
    _el(t, "CardHolderCurrency", txn["currency"])
    _el(t, "CardHolderCurrencyAlpha", txn["currency_alpha"])
    for tag, key in (
        ("ReservedAmount", "reserved"),
        ("CapturedAmount", "captured"),
        ("RefundedAmount", "refunded"),
    ):
        _el(t, tag, _money(txn[key]))
    for tag in ("CreditedAmount", "RecurringDefaultAmount", "SurchargeAmount"):
        _el(t, tag, "0.00")
    _el(t, "CreatedDate", _stamp(txn["created"], api=False))
    _el(t, "UpdatedDate", _stamp(txn["updated"], api=False))
    _el(t, "PaymentNature", "CreditCard")
    _el(t, "PaymentSource", "eCommerce")
    _el(t, "PaymentSchemeName", txn.get("scheme", ""))
    service = SubElement(t, "PaymentNatureService", name="SandboxAcquirer")
    for tag in (
        "SupportsRefunds",
        "SupportsRelease",
        "SupportsMultipleCaptures",
        "SupportsMultipleRefunds",
    ):
        _el(service, tag, "true")
    SubElement(t, "ChargebackEvents")
    infos = SubElement(t, "PaymentInfos")
    for name, value in sorted(txn.get("transaction_info", {}).items()):
        _el(infos, "PaymentInfo", value, name=name)
    _customer_xml(t, txn)
    ids = SubElement(t, "ReconciliationIdentifiers")
    for entry in txn.get("reconciliation", []):
        node = SubElement(ids, "ReconciliationIdentifier")
        _el(node, "Id", entry["id"])
        _el(node, "Amount", _money(entry["amount"]), currency=txn["currency"])
        _el(node, "Type", entry["type"])
        _el(node, "Date", _stamp(entry["date"]))
    return t


def _customer_xml(parent: Element, txn: dict) -> None:
    info = txn.get("customer_info", {})
    customer = SubElement(parent, "CustomerInfo")
    _el(customer, "UserAgent", txn.get("user_agent", ""))
    _el(customer, "IpAddress", txn.get("ip", ""))
    _el(customer, "Email", info.get("email", ""))
    _el(customer, "Username", info.get("username", ""))
    _el(customer, "CustomerPhone", info.get("customer_phone", ""))
    _el(customer, "OrganisationNumber", info.get("organisation_number", ""))
    billing = SubElement(customer, "BillingAddress")
    for tag, key in (
        ("Firstname", "billing_firstname"),
        ("Lastname", "billing_lastname"),
        ("Address", "billing_address"),
        ("City", "billing_city"),
        ("PostalCode", "billing_postal"),
        ("Country", "billing_country"),
    ):
        if info.get(key):
            _el(billing, tag, info[key])
    SubElement(customer, "ShippingAddress")
    SubElement(customer, "RegisteredAddress")


def _xml_answer(text: str, status: int = 200) -> Response:
    return Response(text, status=status, mimetype="text/xml")


@bp.errorhandler(ApiError)
def _api_error(error: ApiError):
    method = (request.view_args or {}).get("method") or request.path.rsplit("/", 1)[-1]
    body = Element("Body") if store().setting("altapay:error_body", True) else None
    return _xml_answer(_api_response(method, body, store().now(), error.code, str(error)))


# The Merchant API ------------------------------------------------------------------------------
def _authenticated(view: Callable) -> Callable:
    @functools.wraps(view)
    def check(*args, **kwargs):
        auth = request.authorization
        config = current_app.config
        if (
            auth is None
            or auth.type != "basic"
            or not hmac.compare_digest(
                str(auth.username or ""), str(config["SANDBOX_ALTAPAY_USERNAME"])
            )
            or not hmac.compare_digest(
                str(auth.password or ""), str(config["SANDBOX_ALTAPAY_PASSWORD"])
            )
        ):
            return Response(
                "401 Unauthorized: API user and password are required (HTTP Basic)\n",
                status=401,
                mimetype="text/plain",
                headers={"WWW-Authenticate": 'Basic realm="AltaPay Merchant API"'},
            )
        return view(*args, **kwargs)

    return check


def api_method(name: str, auth: bool = True):
    """Register ``POST /merchant/API/<name>``: Basic auth, then armable faults of that name."""

    def register(view: Callable) -> Callable:
        wrapped = faultable("altapay", name)(_authenticated(view) if auth else view)
        bp.add_url_rule(
            f"/merchant/API/{name}", endpoint=f"api_{name}", view_func=wrapped, methods=["POST"]
        )
        return view

    return register


@bp.post("/merchant/API/<method>")
@_authenticated
def unknown_method(method: str):
    raise ApiError(f"Unknown API method: {method}")


@api_method("testConnection", auth=False)
def test_connection():
    return _xml_answer(_api_response("testConnection", _body(("Result", "OK")), store().now()))


@api_method("login")
def login():
    return _xml_answer(_api_response("login", _body(("Result", "OK")), store().now()))


@api_method("getTerminals")
def get_terminals():
    body = _body(("Result", "Success"))
    terminals = SubElement(body, "Terminals")
    terminal = SubElement(terminals, "Terminal")
    _el(terminal, "Title", current_app.config["SANDBOX_ALTAPAY_TERMINAL"])
    _el(terminal, "Country", "DK")
    natures = SubElement(terminal, "Natures")
    _el(natures, "Nature", "CreditCard")
    currencies = SubElement(terminal, "Currencies")
    for alpha in sorted(NUMERIC):
        _el(currencies, "Currency", alpha)
    return _xml_answer(_api_response("getTerminals", body, store().now()))


@api_method("createPaymentRequest")
def create_payment_request():
    params = _nested(request.form)
    fields = _validated_request(params)
    if not _use_shop_orderid(fields["shop_orderid"]):
        raise ApiError(f"shop_orderid may be used at most {MAX_ORDERID_USES} times")
    pid = str(uuid.uuid4())
    store().put(REQUESTS, pid, {"pid": pid, **fields, "created": store().now()})
    body = _body(
        ("Result", "Success"),
        ("PaymentRequestId", pid),
        ("Url", url_for("altapay.request_form", pid=pid, _external=True)),
        ("DynamicJavascriptUrl", url_for("altapay.embedded_window", pid=pid, _external=True)),
    )
    return _xml_answer(_api_response("createPaymentRequest", body, store().now()))


def _validated_request(params: dict) -> dict:
    """Check createPaymentRequest's parameters (§3.2); raise ApiError naming the first bad one."""
    terminal = str(params.get("terminal", ""))
    shop_orderid = str(params.get("shop_orderid", ""))
    amount = str(params.get("amount", "")).strip()
    currency = _currency(str(params.get("currency", "")))
    kind = str(params.get("type") or "payment")
    language = str(params.get("language") or "en").lower()
    if currency is None:
        raise ApiError("currency must be an ISO 4217 code the terminal accepts")
    expected = str(current_app.config["SANDBOX_ALTAPAY_TERMINAL"])
    # A terminal title may carry a {currency} placeholder (§3.2).
    if terminal.replace("{currency}", currency[1]) != expected:
        raise ApiError(f"Unknown terminal: {terminal}")
    if not SHOP_ORDERID.match(shop_orderid):
        raise ApiError("shop_orderid must match [a-zA-Z0-9-]{1,100}")
    if not AMOUNT.match(amount):
        raise ApiError("amount must be a decimal with at most two decimals")
    if kind not in PAYMENT_TYPES:
        raise ApiError(f"Unknown payment type: {kind}")
    if language not in LANGUAGES:
        raise ApiError(f"Unsupported language: {language}")
    config = {k: str(v) for k, v in _dict(params.get("config")).items() if k in CONFIG_KEYS}
    for key, url in config.items():
        if not url.startswith(("http://", "https://")):
            raise ApiError(f"config[{key}] must be an absolute http(s) URL")
    lines = _dict(params.get("orderLines"))
    order_lines = [lines[k] for k in sorted(lines, key=_index) if isinstance(lines[k], dict)]
    return {
        "terminal": expected,
        "shop_orderid": shop_orderid,
        "amount": _money(_cents(amount)),
        "amount_cents": _cents(amount),
        "currency": currency[0],
        "currency_alpha": currency[1],
        "type": kind,
        "language": language,
        "config": config,
        "customer_info": {k: str(v) for k, v in _dict(params.get("customer_info")).items()},
        "transaction_info": {k: str(v) for k, v in _dict(params.get("transaction_info")).items()},
        "order_lines": order_lines,
        "basket": _basket(order_lines, _cents(amount)),
        "cookie": str(params.get("cookie", "")),
        "transactions": [],
    }


GOODS_TYPES = (
    "shipment",
    "handling",
    "item",
    "digital",
    "discount",
    "gift_card",
    "physical",
    "sales_tax",
    "subscription_model",
)
DECIMAL = re.compile(r"^-?\d{1,12}(\.\d{1,6})?$")


def _basket(order_lines: list[dict], amount_cents: int) -> list[dict] | None:
    """``orderLines`` read into lines with their amount in cents, refused (ApiError) unless they
    add up to the amount.

    A line comes to ``quantity × unitPrice`` (the price without tax, §3.2; less ``discount``
    percent) plus ``taxAmount`` (the line's tax), or plus ``taxPercent`` of it when no
    ``taxAmount`` is sent, rounded half up to the cent. That the lines add up to the amount is
    this sandbox's check: a shop that sends a basket should send the one it charges for.
    """
    if not order_lines:
        return None
    lines = [_basket_line(line, number) for number, line in enumerate(order_lines, start=1)]
    added = sum(line["amount_cents"] for line in lines)
    if added != amount_cents:
        raise ApiError(
            f"orderLines add up to {_money(added)}, not to the amount {_money(amount_cents)}"
        )
    return lines


def _basket_line(line: dict, number: int) -> dict:
    where = f"orderLines[{number - 1}]"
    description = str(line.get("description", "")).strip()
    goods_type = str(line.get("goodsType") or "item")
    if not description or not str(line.get("itemId", "")).strip():
        raise ApiError(f"{where}: description and itemId are required")
    if goods_type not in GOODS_TYPES:
        raise ApiError(f"{where}: unknown goodsType {goods_type}")
    numbers = {}
    for name in ("quantity", "unitPrice", "taxAmount", "taxPercent", "discount"):
        text = str(line.get(name, "")).strip()
        if name in ("quantity", "unitPrice") and not text:
            raise ApiError(f"{where}: {name} is required")
        if text and not DECIMAL.match(text):
            raise ApiError(f"{where}: {name} must be a decimal number")
        numbers[name] = Decimal(text) if text else None
    quantity, unit_price = numbers["quantity"], numbers["unitPrice"]
    assert quantity is not None and unit_price is not None  # required above
    if quantity <= 0:
        raise ApiError(f"{where}: quantity must be above 0")
    net = quantity * unit_price * (1 - (numbers["discount"] or Decimal(0)) / 100)
    tax = numbers["taxAmount"]
    if tax is None:
        tax = net * (numbers["taxPercent"] or Decimal(0)) / 100
    cents = ((net + tax) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return {
        "description": description,
        "itemId": str(line["itemId"]),
        "quantity": str(quantity),
        "unitPrice": str(unit_price),
        "taxAmount": None if numbers["taxAmount"] is None else str(numbers["taxAmount"]),
        "taxPercent": None if numbers["taxPercent"] is None else str(numbers["taxPercent"]),
        "goodsType": goods_type,
        "amount_cents": int(cents),
        "amount": _money(int(cents)),
    }


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _index(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (1 << 30, key)


def _use_shop_orderid(shop_orderid: str) -> bool:
    """Count one use of ``shop_orderid``; False once it has been used four times (§3.2)."""
    store().insert(ORDER_IDS, shop_orderid, {"uses": 0})

    def use(doc: dict) -> bool:
        if doc["uses"] >= MAX_ORDERID_USES:
            return False
        doc["uses"] += 1
        return True

    return store().update(ORDER_IDS, shop_orderid, use)[1]


@api_method("payments")
def payments():
    form = request.form
    wanted = {
        "id": form.get("transaction_id") or None,
        "payment_id": form.get("payment_id") or None,
        "shop_orderid": form.get("shop_orderid") or None,
        "terminal": form.get("terminal") or None,
    }
    either = form.get("transaction")  # a transaction id or a payment id
    shop = form.get("shop")
    rows = [
        t
        for t in store().all(TRANSACTIONS)
        if all(value is None or t.get(key) == value for key, value in wanted.items())
        and (not either or either in (t["id"], t["payment_id"]))
        and (not shop or shop == SHOP_NAME)
    ]
    body = Element("Body")
    echoed = SubElement(body, "ResultFilter")
    for name, value in sorted(form.items()):
        if name in ("transaction_id", "payment_id", "shop_orderid", "terminal", "shop"):
            _el(echoed, name, value)
    if rows or store().setting("altapay:payments_no_match", "omit") != "omit":
        holder = SubElement(body, "Transactions")
        for txn in rows[:MAX_PAYMENTS_ROWS]:
            holder.append(_transaction_xml(txn))
    return _xml_answer(_api_response("payments", body, store().now()))


@api_method("captureReservation")
def capture_reservation():
    txn = _transaction_named()
    amount = _optional_amount()
    if (txn["reserved"] - txn["captured"] if amount is None else amount) == CAPTURE_SLOW:
        seconds = store().setting("altapay:slow_capture_seconds", 20)
        time.sleep(min(float(seconds), MAX_SLEEP))

    def capture(doc: dict) -> tuple[str, str, int]:
        remaining = _still_reserved(doc)
        wanted = remaining if amount is None else amount
        if doc["status"] not in ("preauth", "captured") or remaining <= 0:
            return "Failed", "The reservation cannot be captured in its state", wanted
        if wanted <= 0 or wanted > remaining:
            return "Failed", "The capture amount exceeds the remaining reservation", wanted
        if wanted in (CAPTURE_FAILS, CAPTURE_ERRS):
            result = "Failed" if wanted == CAPTURE_FAILS else "Error"
            return result, f"Test amount {_money(wanted)}: capture {result.lower()}", wanted
        doc["captured"] += wanted
        doc["status"] = "captured"
        _reconcile(doc, wanted, "captured")
        return "Success", "", wanted

    doc, (result, message, wanted) = store().update(TRANSACTIONS, txn["id"], capture)
    body = _back_office_body(
        doc,
        result,
        message,
        ("CaptureAmount", _money(wanted)),
        ("CaptureCurrency", doc["currency"]),
        mirror="CaptureResult",
    )
    return _xml_answer(_api_response("captureReservation", body, store().now()))


@api_method("releaseReservation")
def release_reservation():
    txn = _transaction_named()

    def release(doc: dict) -> tuple[str, str]:
        # What is reserved and not captured is released: the whole reservation, or the rest
        # of a partly captured one (§3.6). A partly captured one keeps its status and amounts.
        rest = _still_reserved(doc)
        if doc["status"] not in ("preauth", "captured", "refunded") or rest <= 0:
            return "Failed", "Nothing is left reserved to release"
        if doc["reserved"] in (RELEASE_FAILS, RELEASE_ERRS):
            result = "Failed" if doc["reserved"] == RELEASE_FAILS else "Error"
            return result, f"Test amount {_money(doc['reserved'])}: release {result.lower()}"
        if doc["captured"] > 0:
            doc["released"] = doc.get("released", 0) + rest
        else:
            doc["status"] = "released"
        doc["updated"] = store().now()
        return "Success", ""

    doc, (result, message) = store().update(TRANSACTIONS, txn["id"], release)
    body = _back_office_body(doc, result, message, mirror="CancelResult")
    return _xml_answer(_api_response("releaseReservation", body, store().now()))


@api_method("refundCapturedReservation")
def refund_captured_reservation():
    txn = _transaction_named()
    amount = _optional_amount()
    fault, params = protocol_fault()

    def refund(doc: dict) -> tuple[str, str, int]:
        remaining = doc["captured"] - doc["refunded"]
        wanted = remaining if amount is None else amount
        if fault == "failed":
            return "Failed", str(params.get("message", "The refund was declined")), wanted
        if remaining <= 0:
            return "Failed", "Nothing captured is left to refund", wanted
        if wanted <= 0 or wanted > remaining:
            return "Failed", "The refund amount exceeds the captured amount", wanted
        doc["refunded"] += wanted
        doc["status"] = "refunded"
        _reconcile(doc, wanted, "refunded")
        return "Success", "", wanted

    doc, (result, message, wanted) = store().update(TRANSACTIONS, txn["id"], refund)
    body = _back_office_body(
        doc,
        result,
        message,
        ("RefundAmount", _money(wanted)),
        ("RefundCurrency", doc["currency"]),
        mirror="RefundResult",
    )
    return _xml_answer(_api_response("refundCapturedReservation", body, store().now()))


def _still_reserved(doc: dict) -> int:
    """What of the reservation may still be captured or released."""
    return doc["reserved"] - doc["captured"] - doc.get("released", 0)


def _transaction_named() -> dict:
    transaction_id = request.form.get("transaction_id", "")
    txn = store().get(TRANSACTIONS, transaction_id) if transaction_id else None
    if txn is None:
        raise ApiError(f"No such transaction: {transaction_id or '(transaction_id missing)'}")
    return txn


def _optional_amount() -> int | None:
    text = request.form.get("amount", "").strip()
    if not text:
        return None  # the whole remaining amount (§3.6)
    if not AMOUNT.match(text):
        raise ApiError("amount must be a decimal with at most two decimals")
    return _cents(text)


def _reconcile(doc: dict, cents: int, kind: str) -> None:
    now = store().now()
    doc["updated"] = now
    doc.setdefault("reconciliation", []).append(
        {"id": str(uuid.uuid4()), "amount": cents, "type": kind, "date": now}
    )


def _back_office_body(doc, result, message, *amounts, mirror: str) -> Element:
    fields: list[tuple[str, object]] = [*amounts, ("Result", result)]
    if result != "Success":
        fields.append(("MerchantErrorMessage", message))
    fields.append((mirror, result))  # deprecated twin of Result, still sent (§3.6)
    return _body(*fields, transactions=[doc])


# The hosted payment page -----------------------------------------------------------------------
@bp.get("/eCommerce.php/API/embeddedPaymentWindow")
def embedded_window():
    """The embedded window needs JavaScript; the sandbox sends the browser to the page instead."""
    return redirect(url_for("altapay.request_form", pid=request.args.get("pid", "")), code=303)


@bp.route("/merchant.php/API/requestForm", methods=["GET", "POST"])
def request_form():
    """The payment page for one payment request.

    :raise 404: no payment request has this ``pid``.
    """
    req = store().get(REQUESTS, request.args.get("pid", ""))
    if req is None:
        return _message_page("Payment not found", "There is no payment with this link.", 404)
    done = _settled_transaction(req)
    if request.method == "GET":
        if done is not None:
            return _message_page(
                "Payment already completed",
                f"The payment for order {req['shop_orderid']} has already been completed.",
            )
        return _form_page(req)
    if done is not None:
        # A resubmitted page (back button) after success: AltaPay calls the fail page, which
        # must not undo the payment (§3.8); its xml still shows the money.
        return _deliver(req, {**done, "result": "Failed", **_ALREADY_PAID}, "fail")
    return _submit(req)


_ALREADY_PAID = {
    "merchant_error": "The payment request has already been completed",
    "cardholder_error": "This payment has already been completed.",
    "must_show": True,
}


def _settled_transaction(req: dict) -> dict | None:
    for transaction_id in req.get("transactions", []):
        txn = store().get(TRANSACTIONS, transaction_id)
        if txn and (txn["status"] in MONEY_STATUSES or txn["status"] == OPEN_STATUS):
            return txn
    return None


def _submit(req: dict):
    if request.form.get("action") == "cancel":
        txn = _new_transaction(req, "Failed", "epayment_cancelled", card=None, **_CANCELLED)
        return _deliver(req, txn, "fail", status="cancelled")
    card, problem = _card_from_form()
    if problem:
        return _form_page(req, error=problem)
    refusal = _verify_order(req, card)
    if refusal:
        return _form_page(req, error=refusal)
    result, status, messages = _decide(req, card["number"])
    reserved = req["amount_cents"] if status in ("preauth", "captured") else 0
    captured = reserved if status == "captured" else 0
    txn = _new_transaction(req, result, status, card, reserved, captured, **messages)
    if result == "Open":
        _schedule_open(_app(), txn["id"])
        return _deliver(req, txn, "open")
    return _deliver(req, txn, "ok" if result == "Success" else "fail")


_CANCELLED = {
    "merchant_error": "The customer cancelled the payment",
    "cardholder_error": "The payment was cancelled.",
    "must_show": True,
}


def _card_from_form() -> tuple[dict, str]:
    number = cards.digits(request.form.get("cardno", ""))
    month = request.form.get("emonth", "").strip()
    year = request.form.get("eyear", "").strip()
    cvc = request.form.get("cvc", "").strip()
    if not cards.luhn_ok(number):
        return {}, "The card number is not valid. Please check it and try again."
    if not (month.isdigit() and 1 <= int(month) <= 12 and year.isdigit() and len(year) in (2, 4)):
        return {}, "Enter the expiry date as month (MM) and year (YY)."
    full_year = int(year) + 2000 if len(year) == 2 else int(year)
    today = datetime.fromtimestamp(store().now(), tz=UTC)
    if (full_year, int(month)) < (today.year, today.month):
        return {}, "The card has expired."
    if not (cvc.isdigit() and len(cvc) in (3, 4)):
        return {}, "Enter the 3 or 4 digit security code (CVC)."
    return {"number": number, "month": f"{int(month):02d}", "year": str(full_year)}, ""


_DECLINED = {
    "merchant_error": "Card declined by the issuer",
    "cardholder_error": "Your card was declined. Please use another card.",
    "must_show": True,
}
_DECLINED_BY_AMOUNT = {
    "merchant_error": "Card declined (test amount .66)",
    "cardholder_error": "Declined",
    "must_show": False,
}
_ACQUIRER_ERROR = {
    "merchant_error": "Acquirer communication error (test amount .67)",
    "cardholder_error": "A technical error occurred. Please try again later.",
    "must_show": True,
}


def _decide(req: dict, number: str) -> tuple[str, str, dict]:
    """Body Result, TransactionStatus and messages for a card submitted on the page."""
    cents = req["amount_cents"]
    coded = None if cents in BACK_OFFICE_AMOUNTS else cents % 100
    if coded == 66:
        return "Failed", "epayment_declined", _DECLINED_BY_AMOUNT
    if number.endswith("0566"):
        return "Failed", "epayment_declined", _DECLINED
    if coded == 67 or number.endswith("0667"):
        return "Error", "error", _ACQUIRER_ERROR
    if coded == 68 or number.endswith("0668"):
        return "Open", OPEN_STATUS, {}
    if req["type"] in ("paymentAndCapture", "subscriptionAndCharge"):
        return "Success", "captured", {}
    return "Success", "preauth", {}


def _new_transaction(req, result, status, card, reserved=0, captured=0, **messages) -> dict:
    now = store().now()
    txn = {
        "payment_id": req["pid"],
        "shop_orderid": req["shop_orderid"],
        "terminal": req["terminal"],
        "auth_type": req["type"],
        "status": status,
        "result": result,
        "currency": req["currency"],
        "currency_alpha": req["currency_alpha"],
        "reserved": reserved,
        "captured": captured,
        "refunded": 0,
        "created": now,
        "updated": now,
        "customer_info": req.get("customer_info", {}),
        "transaction_info": req.get("transaction_info", {}),
        "user_agent": request.headers.get("User-Agent", ""),
        "ip": request.remote_addr or "",
        "reconciliation": [],
        **messages,
        **_card_fields(card),
    }
    if captured:
        _reconcile(txn, captured, "captured")
    while True:
        txn["id"] = str(10_000_000 + secrets.randbelow(90_000_000))
        if store().insert(TRANSACTIONS, txn["id"], txn):
            break
    store().update(REQUESTS, req["pid"], lambda doc: doc["transactions"].append(txn["id"]))
    return txn


def _card_fields(card: dict | None) -> dict:
    if not card:
        return {}
    number = card["number"]
    token = hashlib.sha1(b"token:" + number.encode(), usedforsecurity=False).hexdigest()
    blacklist = hashlib.sha1(b"blacklist:" + number.encode(), usedforsecurity=False).hexdigest()
    scheme = {"VISA": "Visa", "MASTERCARD": "Mastercard", "AMEX": "AmericanExpress"}
    return {
        "masked_pan": cards.mask(number, "*" * max(len(number) - 10, 1)),
        "card_token": token,
        "blacklist_token": blacklist,
        "expiry_year": card["year"],
        "expiry_month": card["month"],
        "scheme": scheme.get(cards.brand(number), "Card"),
    }


def _form_page(req: dict, error: str = ""):
    context = {"req": req, "error": error, "test_cards": TEST_CARDS, "lang": req["language"]}
    action = url_for("altapay.request_form", pid=req["pid"])
    fields = render_template("sandbox/altapay_fields.html", **context)
    page = _merchant_form(req, action, fields)
    if page is not None:
        return Response(page, mimetype="text/html")
    return render_template("sandbox/altapay_form.html", action=action, **context)


def _merchant_form(req: dict, action: str, fields: str) -> str | None:
    """The merchant's ``callback_form`` page with the card fields in it, or None to fall back
    to the built-in page (no such page, unreachable, or no ``form#PensioPaymentForm``)."""
    url = req["config"].get("callback_form")
    if not url:
        return None
    order = {
        "shop_orderid": req["shop_orderid"],
        "amount": req["amount"],
        "currency": req["currency"],
        "language": req["language"],
        "payment_id": req["pid"],
        **{f"transaction_info[{k}]": v for k, v in req["transaction_info"].items()},
    }
    try:
        answer = requests.post(
            url,
            data=order,
            headers=_relayed_headers(req),
            timeout=_timeouts(_app()),
            allow_redirects=False,
        )
    except requests.RequestException:
        return None
    if answer.status_code != 200:
        return None
    page, injected = sanitize(_decoded(answer), form=(action, fields))
    return page if injected else None


def _relayed_headers(req: dict) -> dict:
    # The gateway's server makes these calls; it passes on the customer's browser and the
    # merchant's ``cookie`` parameter as the Cookie header (§3.2, §3.3).
    headers = {"User-Agent": request.headers.get("User-Agent", "Sandbox Gateway")}
    if req.get("cookie"):
        headers["Cookie"] = req["cookie"]
    return headers


def _message_page(title: str, message: str, status: int = 200, **extra):
    page = render_template("sandbox/altapay_message.html", title=title, message=message, **extra)
    return page, status


# Verify order ------------------------------------------------------------------------------------
def _verify_order(req: dict, card: dict) -> str:
    """Ask ``callback_verify_order`` (§3.4): "" to go on, else the reason shown to the customer.

    Only HTTP 200 with the body ``OKAY`` proceeds; otherwise the first 255 characters of the
    answer, tags stripped, are the error.
    """
    url = req["config"].get("callback_verify_order")
    if not url:
        return ""
    fields = {
        "shop_orderid": req["shop_orderid"],
        "amount": req["amount"],
        "currency": req["currency"],
        "type": req["type"],
        "payment_id": req["pid"],
        "nature": "CreditCard",
        "masked_credit_card": _card_fields(card)["masked_pan"],
        **{f"transaction_info[{k}]": v for k, v in req["transaction_info"].items()},
    }
    if _secret(_app()):
        fields["checksum"] = checksum(
            req["amount"], req["currency"], req["shop_orderid"], _secret(_app())
        )
    try:
        answer = requests.post(
            url,
            data=fields,
            headers=_relayed_headers(req),
            timeout=_timeouts(_app()),
            allow_redirects=False,
        )
    except requests.RequestException:
        return "The shop could not confirm the order. Please try again later."
    body = _decoded(answer)
    if answer.status_code == 200 and body == "OKAY":
        return ""
    text = " ".join(html.unescape(re.sub(r"<[^>]*>", " ", body)).split())[:255]
    return text or f"The shop could not confirm the order (HTTP {answer.status_code})."


# Result callbacks -------------------------------------------------------------------------------
def _deliver(req: dict, txn: dict, kind: str, status: str | None = None):
    """POST the result to the shop's page for ``kind`` and relay its answer to the browser."""
    app = _app()
    url = req["config"].get(f"callback_{kind}") or (
        req["config"].get("callback_ok") if kind == "open" else None
    )
    if not url:
        return _message_page(
            "Payment " + (status or CALLBACK_STATUS.get(txn["result"], "completed")),
            f"Order {req['shop_orderid']}: the shop has no result page configured.",
            shop_orderid=req["shop_orderid"],
            payment_id=req["pid"],
        )
    fault, params = store().take_fault("altapay", "callback") or (None, {})
    fields = _callback_fields(app, req, txn, status, fault, params)
    copies = max(int(params.get("copies", 2)), 1) if fault == "duplicate" else 1
    answer = None
    for _ in range(copies):
        answer = _post_page(app, kind, url, fields, req, txn)
    if fault == "fail_after_success" and kind == "ok" and req["config"].get("callback_fail"):
        _fail_after_success(app, req, txn)
    return _relay(answer, url, req)


def _callback_fields(app, req, txn, status=None, fault=None, params=None) -> dict:
    """The §3.4 field set of a result callback, with ``xml`` and ``checksum``; a protocol fault
    armed on op ``callback`` changes it the way a broken or forged callback would look."""
    params = params or {}
    shown = dict(txn)  # the transaction as the xml will show it
    posted = {
        "shop_orderid": txn["shop_orderid"],
        "currency": txn["currency"],
        "amount": req["amount"],
    }
    _tamper(fault, params, shown, posted)
    body = _body(*_outcome_fields(shown), transactions=[shown])
    xml = _api_response("reservationOfFixedAmount", body, _store_of(app).now())
    fields = {
        **posted,
        "type": req["type"],
        "embedded_window": "0",
        "transaction_id": txn["id"],
        "payment_id": txn["payment_id"],
        "nature": "CreditCard",
        "require_capture": "true" if shown["status"] == "preauth" else "false",
        "payment_status": shown["status"],
        "masked_credit_card": shown.get("masked_pan", ""),
        "blacklist_token": shown.get("blacklist_token", ""),
        "credit_card_token": shown.get("card_token", ""),
        "status": status or CALLBACK_STATUS[shown["result"]],
        "error_message": shown.get("cardholder_error", ""),
        "merchant_error_message": shown.get("merchant_error", ""),
        "cardholder_message_must_be_shown": "true" if shown.get("must_show") else "false",
        **{f"transaction_info[{k}]": v for k, v in req["transaction_info"].items()},
        "xml": xml[: len(xml) // 2] if fault == "malformed_xml" else xml,
    }
    secret = _secret(app)
    if secret and fault != "no_checksum":
        # bad_checksum signs with the wrong secret: well-formed, and wrong.
        key = "not-" + secret if fault == "bad_checksum" else secret
        fields["checksum"] = checksum(
            posted["amount"], posted["currency"], posted["shop_orderid"], key
        )
    return fields


def _tamper(fault: str | None, params: dict, shown: dict, posted: dict) -> None:
    """Change the posted values and the xml together, so that the checksum stays valid and
    only the shop's own binding of the result to its order can catch it."""
    if fault == "tamper_amount":
        cents = _cents(str(params.get("amount") or "1.00"))
        posted["amount"] = _money(cents)
        for key in ("reserved", "captured"):
            if shown[key]:
                shown[key] = cents
    elif fault == "tamper_currency":
        fallback = "978" if shown["currency"] == "840" else "840"
        numeric, alpha = _currency(str(params.get("currency") or fallback)) or ("840", "USD")
        posted["currency"] = numeric
        shown["currency"], shown["currency_alpha"] = numeric, alpha
    elif fault == "other_orderid":
        other = str(params.get("orderid") or "sandbox-other-order")
        posted["shop_orderid"] = shown["shop_orderid"] = other


def _post_page(app, kind: str, url: str, fields: dict, req: dict, txn: dict):
    """POST one callback as the gateway's server does, with its timeouts; keep a record."""
    record = {
        "id": secrets.token_hex(8),
        "kind": kind,
        "url": url,
        "payment_id": req["pid"],
        "transaction_id": txn["id"],
        "fields": fields,
        "at": _store_of(app).now(),
    }
    answer: requests.Response | requests.RequestException
    try:
        answer = requests.post(
            url,
            data=fields,
            headers=_relayed_headers(req),
            timeout=_timeouts(app),
            allow_redirects=False,
        )
        record["answer"] = {"status": answer.status_code, "body": answer.text[:2000]}
    except requests.RequestException as exc:
        answer = exc
        record["answer"] = {"status": None, "error": type(exc).__name__}
    _store_of(app).put(CALLBACKS, record["id"], record)
    return answer


def _fail_after_success(app, req: dict, txn: dict) -> None:
    # The customer goes back and submits the page again after paying: AltaPay then calls the
    # fail page for the same payment (§3.8). It arrives after the ok page was relayed.
    failed = {**txn, "result": "Failed", **_ALREADY_PAID}
    job = {
        "url": req["config"]["callback_fail"],
        "data": _callback_fields(app, req, failed),
        "headers": {"Cookie": req["cookie"]} if req.get("cookie") else {},
        "delay": 0.3,
        "max_tries": 1,
        "timeout": list(_timeouts(app)),
        "kind": "fail",
        "payment_id": req["pid"],
    }
    delivery.enqueue(app, "altapay", job)


_REDIRECTS = (301, 302, 303, 307)


def _relay(answer, url: str, req: dict):
    """Show the customer the shop's answer (§3.4): its page without JavaScript, or its redirect;
    no answer in time, or any other status, is the gateway's own error page."""
    if isinstance(answer, requests.Response):
        if answer.status_code in _REDIRECTS and answer.headers.get("Location"):
            # 303 whatever the shop said: the browser's last request was the card form POST,
            # which must not be repeated at the shop's address.
            return redirect(urljoin(url, answer.headers["Location"]), code=303)
        if answer.status_code == 200:
            page, _ = sanitize(_decoded(answer))
            return Response(page, mimetype="text/html")
    if isinstance(answer, requests.Response):
        reason = f"answered HTTP {answer.status_code}"
    elif isinstance(answer, requests.Timeout):
        reason = "did not answer in time"
    else:
        reason = "could not be reached"
    page = render_template(
        "sandbox/altapay_error.html",
        shop_orderid=req["shop_orderid"],
        payment_id=req["pid"],
        reason=reason,
    )
    return page, 502


def _decoded(answer: requests.Response) -> str:
    # AltaPay requires UTF-8 pages (§3.3); a declared charset wins, ISO-8859-1 is never guessed.
    match = re.search(r"charset=([\w-]+)", answer.headers.get("Content-Type", ""), re.I)
    try:
        return answer.content.decode(match.group(1) if match else "utf-8", errors="replace")
    except LookupError:
        return answer.content.decode("utf-8", errors="replace")


# Open payments: the final word arrives later, by callback_notification --------------------------
def _schedule_open(app, transaction_id: str) -> None:
    delay = float(_store_of(app).setting("altapay:open_delay", 1))
    due = _store_of(app).now() + delay
    _store_of(app).update(TRANSACTIONS, transaction_id, lambda doc: doc.update(open_due=due))
    timer = threading.Timer(max(delay, 0) + 0.05, _finish_open, args=(app, transaction_id))
    timer.daemon = True
    timer.start()


def _finish_open(app, transaction_id: str) -> None:
    """Turn a due open payment into its final state, once, and notify the shop."""
    s = _store_of(app)
    now = s.now()
    txn = s.get(TRANSACTIONS, transaction_id)
    req = s.get(REQUESTS, txn["payment_id"]) if txn else None
    if req is None:
        return  # forgotten in the meantime (a reset)
    cents = req["amount_cents"]

    def finish(doc: dict) -> bool:
        if doc["status"] != OPEN_STATUS or doc.get("open_due", now) > now:
            return False
        capture = doc["auth_type"] in ("paymentAndCapture", "subscriptionAndCharge")
        doc.update(result="Success", reserved=cents, updated=now)
        doc["status"] = "bank_payment_finalized" if capture else "preauth"
        if capture:
            doc["captured"] = cents
            _reconcile_at(doc, cents, now)
        return True

    doc, finished = s.update(TRANSACTIONS, transaction_id, finish)
    if finished:
        _notify(app, cast(dict, doc))  # finished: the transaction was there


def _reconcile_at(doc: dict, cents: int, now: float) -> None:
    doc.setdefault("reconciliation", []).append(
        {"id": str(uuid.uuid4()), "amount": cents, "type": "captured", "date": now}
    )


def _notify(app, txn: dict) -> None:
    s = _store_of(app)
    req = s.get(REQUESTS, txn["payment_id"])
    url = req.get("config", {}).get("callback_notification") if req else None
    if req is None or not url:
        return
    fault, params = s.take_fault("altapay", "callback") or (None, {})
    job = {
        "url": url,
        "data": _callback_fields(app, req, txn, None, fault, params),
        "headers": {"Cookie": req["cookie"]} if req.get("cookie") else {},
        # The shop answers 200; anything else is tried again, three tries in all.
        "max_tries": 3,
        "retry_delay": 1.0,
        "timeout": list(_timeouts(app)),
        "kind": "notification",
        "payment_id": req["pid"],
    }
    copies = max(int(params.get("copies", 2)), 1) if fault == "duplicate" else 1
    delivery.enqueue(app, "altapay", job, copies=copies)


def _sweep(app) -> None:
    """After the clock moved: finish every open payment now due."""
    for txn in _store_of(app).find(TRANSACTIONS, status=OPEN_STATUS):
        _finish_open(app, txn["id"])


@bp.record_once
def _register_sweep(state) -> None:
    state.app.extensions.setdefault("sandbox_sweeps", []).append(_sweep)


# Stripping active content ----------------------------------------------------------------------
_DROP_WITH_CONTENT = {"script"}
_DROP_TAG = {"iframe", "frame", "frameset", "object", "embed", "applet"}
_TAG = re.compile(r"^[a-z][a-z0-9-]*(:[a-z][a-z0-9-]*)?$")
_ATTRIBUTE = re.compile(r"^[a-z_:][-a-z0-9_:.]*$")


def _active(value: str) -> bool:
    """A URL or style that would run script: ``javascript:`` anywhere (also inside CSS
    ``url()``), ``vbscript:``, an HTML ``data:`` URL, or an old IE ``expression()``."""
    compact = re.sub(r"[\x00-\x20]+", "", value).lower()
    return (
        "javascript:" in compact
        or "vbscript:" in compact
        or compact.startswith("data:text/html")
        or "expression(" in compact
    )


class _Cleaner(HTMLParser):
    """Re-emits HTML without scripts, event handlers, ``javascript:`` URLs or plug-ins (§3.3),
    optionally replacing ``form#PensioPaymentForm`` with the gateway's own card form."""

    def __init__(self, form: tuple[str, str] | None):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.form = form  # (action, inner HTML) to inject
        self.injected = False
        self._skipping: str | None = None  # a dropped element whose content goes too
        self._in_merchant_form = False
        self._raw: str | None = None  # inside <style>: text is CSS, not HTML

    def handle_starttag(self, tag, attrs):
        self._start(tag, attrs, closed=False)

    def handle_startendtag(self, tag, attrs):
        self._start(tag, attrs, closed=True)

    def _start(self, tag: str, attrs: list, closed: bool) -> None:
        if self._skipping or self._in_merchant_form or not _TAG.match(tag):
            return
        if tag in _DROP_WITH_CONTENT:
            # Even "<script/>" opens a script element in HTML: drop up to its end tag.
            self._skipping = tag
            return
        if tag in _DROP_TAG or (tag == "meta" and _refresh(attrs)):
            return
        kept = _safe_attributes(attrs)
        if self.form and not self.injected and tag == "form" and dict(attrs).get("id") == FORM_ID:
            self._inject(kept, closed)
            return
        if tag == "style" and not closed:
            self._raw = tag
        self.out.append(f"<{tag}{_attribute_text(kept)}{' /' if closed else ''}>")

    def _inject(self, kept: list, closed: bool) -> None:
        action, inner = cast("tuple[str, str]", self.form)  # only called with a form
        own = [(k, v) for k, v in kept if k in ("class", "style", "lang", "dir")]
        mine = [("id", FORM_ID), ("method", "post"), ("action", action), *own]
        self.out.append(f"<form{_attribute_text(mine)}>{inner}")
        self.injected = True
        if closed:
            self.out.append("</form>")
        else:
            self._in_merchant_form = True

    def handle_endtag(self, tag):
        if self._skipping:
            if tag == self._skipping:
                self._skipping = None
            return
        if self._in_merchant_form:
            if tag == "form":
                self._in_merchant_form = False
                self.out.append("</form>")
            return
        if tag in _DROP_WITH_CONTENT or tag in _DROP_TAG or not _TAG.match(tag):
            return
        if tag == self._raw:
            self._raw = None
        self.out.append(f"</{tag}>")

    def handle_data(self, data):
        if self._skipping or self._in_merchant_form:
            return
        if self._raw:
            self.out.append("" if _active(data) else data)
        else:
            self.out.append(html.escape(data, quote=False))

    def handle_decl(self, decl):
        if decl.lower().startswith("doctype"):
            self.out.append(f"<!{decl}>")

    # Comments (IE conditional comments can hold scripts), processing instructions and CDATA
    # sections are dropped.
    def handle_comment(self, data):
        return

    def handle_pi(self, data):
        return

    def unknown_decl(self, data):
        return


def _refresh(attrs: list) -> bool:
    return any(k == "http-equiv" and (v or "").lower() == "refresh" for k, v in attrs)


def _safe_attributes(attrs: list) -> list[tuple[str, str | None]]:
    kept = []
    for name, value in attrs:
        if not _ATTRIBUTE.match(name) or name.startswith("on") or name == "srcdoc":
            continue
        if value is not None and _active(value):
            continue
        kept.append((name, value))
    return kept


def _attribute_text(attrs: list) -> str:
    return "".join(
        f" {name}" if value is None else f' {name}="{html.escape(value, quote=True)}"'
        for name, value in attrs
    )


def sanitize(page: str, form: tuple[str, str] | None = None) -> tuple[str, bool]:
    """``page`` with all active content removed; with ``form`` = (action, fields HTML), the
    merchant's ``form#PensioPaymentForm`` emptied and given the card fields. Returns the page
    and whether the form was found."""
    cleaner = _Cleaner(form)
    cleaner.feed(page)
    cleaner.close()
    return "".join(cleaner.out), cleaner.injected
