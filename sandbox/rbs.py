"""BPC/RBS "eCommerce API V1", simulated (gateways.md §2 is the protocol, §4.2 the simulator).

``/rbs/payment/rest/<method>.do``          register, registerPreAuth, getOrderStatusExtended,
                                           getOrderStatus (legacy keys), deposit, reverse, refund
``/rbs/payment/merchants/<m>/payment_<lang>.html?mdOrder=<id>``   the hosted payment page
``/rbs/payment/acs.html?mdOrder=<id>``     the simulated issuer 3-D Secure step
``/rbs/__control/callback``                send a callback for an order on demand (replays;
                                           control token required, see ``sandbox.control``)

A registration's ``orderBundle`` is kept as sent and, read, as the order's ``basket`` (one
entry per item: name, quantity, measure, itemPrice, itemAmount, itemCode, taxType, taxSum); a
basket whose items do not add up to the amount is refused (errorCode 5), and the hosted page
lists the items.

Orders are ``rbs_order`` documents keyed by orderId; ``rbs_number`` documents keyed by
``<merchant>:<orderNumber>`` make order numbers unique per merchant. Every change of an order is
one ``store.update`` (atomic), and a callback is sent only by the call whose update made the
change, so each event is reported once however many processes serve the sandbox.

Configuration: ``SANDBOX_RBS_USERNAME``/``PASSWORD`` (the API account; the user name is also the
merchant name in page URLs), ``SANDBOX_RBS_TOKEN`` (optional: accept ``token`` instead),
``SANDBOX_RBS_CALLBACK_KEY`` (empty: callbacks carry no checksum), ``SANDBOX_RBS_CALLBACK_URL``,
``SANDBOX_RBS_SESSION_TIMEOUT``, ``SANDBOX_RBS_CURRENCY`` (optional, numeric; default 978),
``SANDBOX_RBS_REVERSE_WINDOW`` (seconds after a deposit during which reverse.do still cancels it).

Run-time settings (``POST /__control/settings``): ``rbs:numbers_as_strings`` (every number in
the replies as a string), ``rbs:numeric_error_code`` (errorCode as a JSON number, as SATIM
answers), ``rbs:callback_method`` ("POST" or "GET"), ``rbs:callback_retry_delay`` (seconds),
and the shared ``delivery:rbs`` (deliver / hold / drop).

Faults (``POST /__control/faults``, gateway "rbs"): every ``.do`` method takes the transport
faults of ``sandbox.faults`` under its own name (``register``, ``getOrderStatusExtended``, …).
``getOrderStatusExtended`` and ``getOrderStatus`` also take ``tamper_amount`` {amount},
``tamper_currency`` {currency}, ``error_code`` {code=7, message} and ``status`` {orderStatus}.
``refund`` takes ``error_code`` {code=7, message} too: the refund is refused, nothing moves.
Op ``callback``: ``duplicate`` {copies=2}, ``bad_checksum``, ``no_checksum``, ``tamper_amount``
{amount} (validly signed), ``delay`` {seconds=5} and ``drop``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from calendar import timegm
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import cast
from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)

from sandbox import cards, control, delivery
from sandbox.faults import faultable, protocol_fault, store, this_app
from sandbox.store import Store

bp = Blueprint("rbs", __name__)

ORDER = "rbs_order"
NUMBER = "rbs_number"

# orderStatus (gateways.md §2.4)
REGISTERED, APPROVED, DEPOSITED, REVERSED, REFUNDED, ACS, DECLINED = 0, 1, 2, 3, 4, 5, 6
STATUS_NAMES = {
    REGISTERED: "registered, not paid",
    APPROVED: "approved (held)",
    DEPOSITED: "deposited",
    REVERSED: "reversed",
    REFUNDED: "refunded",
    ACS: "3-D Secure authentication in progress",
    DECLINED: "declined",
}
PAYMENT_STATE = {
    REGISTERED: "CREATED",
    APPROVED: "APPROVED",
    DEPOSITED: "DEPOSITED",
    REVERSED: "REVERSED",
    REFUNDED: "REFUNDED",
    ACS: "CREATED",  # no money has moved while the issuer authenticates
    DECLINED: "DECLINED",
}
# Still on the payment page: the session lifetime applies (§2.3, §2.8).
OPEN = (REGISTERED, ACS)
# The browser goes to returnUrl for these, to failUrl for the rest (§2.3).
SUCCEEDED = (APPROVED, DEPOSITED, REVERSED, REFUNDED)

# actionCode: 0 approved; -2007 session expired and 10 cancelled are the family's own codes
# (§2.4); -100 is what deployments report before any payment attempt; 2001 is ours (§4.2).
ACTION_TEXT = {
    0: "",
    -100: "No payment attempts",
    10: "Cancelled by the cardholder",
    2001: "Declined by issuer",
    -2007: "Payment session expired",
}

# Test cards (§4.2): what the hosted page does with each. Any other Luhn-valid number approves.
TEST_CARDS = {
    "4111111111111111": ("approve", "Approved"),
    "5555555555555599": ("3ds", "Approved after a 3-D Secure step (orderStatus 5 meanwhile)"),
    "4000000000000002": ("decline", "Declined by issuer: orderStatus 6, actionCode 2001"),
    "4000000000000036": ("hold", "Held only: orderStatus 1, even for a one-phase order"),
    "4000000000000044": ("cancel", "Cancelled by the cardholder: actionCode 10"),
    "4000000000000051": ("stall", "Stays unpaid until the session expires: actionCode -2007"),
}

# ISO 4217 numeric code → (alphabetic code, minor unit digits): register takes only the numeric
# code (§2.2); the page shows the alphabetic one.
CURRENCIES = {
    "784": ("AED", 2), "051": ("AMD", 2), "036": ("AUD", 2), "975": ("BGN", 2),
    "048": ("BHD", 3), "933": ("BYN", 2), "084": ("BZD", 2), "124": ("CAD", 2),
    "756": ("CHF", 2), "203": ("CZK", 2), "208": ("DKK", 2), "012": ("DZD", 2),
    "978": ("EUR", 2), "826": ("GBP", 2), "981": ("GEL", 2), "348": ("HUF", 2),
    "352": ("ISK", 0), "392": ("JPY", 0), "417": ("KGS", 2), "410": ("KRW", 0),
    "414": ("KWD", 3), "398": ("KZT", 2), "578": ("NOK", 2), "985": ("PLN", 2),
    "946": ("RON", 2), "941": ("RSD", 2), "643": ("RUB", 2), "752": ("SEK", 2),
    "949": ("TRY", 2), "980": ("UAH", 2), "840": ("USD", 2), "860": ("UZS", 2),
}  # fmt: skip
DEFAULT_CURRENCY = "978"

MAX_ORDER_NUMBER = 36
MAX_DESCRIPTION = 598
TERMINAL_ID = "SNDBX001"


class Refusal(Exception):
    """A business error: answered with HTTP 200 and errorCode/errorMessage (§2.1)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# Replies --------------------------------------------------------------------------------------
def _reply(body: Mapping) -> Response:
    as_strings = store().setting("rbs:numbers_as_strings", False)
    numeric_error = store().setting("rbs:numeric_error_code", False)

    # Deployments differ in JSON types (§2.1): BPC sends "errorCode":"0" next to numeric
    # orderStatus, SATIM a numeric errorCode, others every number as a string.
    def shape(value, key=None):
        if isinstance(value, dict):
            return {k: shape(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [shape(v) for v in value]
        if isinstance(value, bool) or not isinstance(value, int):
            return value
        if as_strings or (key in ("errorCode", "ErrorCode") and not numeric_error):
            return str(value)
        return value

    return Response(json.dumps(shape(dict(body))), mimetype="application/json")


SUCCESS = {"errorCode": 0, "errorMessage": "Success"}


def api(method: str, legacy: bool = False):
    """Route ``<method>.do`` (POST form or GET query, §2.1), authenticate, answer JSON.

    ``legacy``: the answer, errors included, uses the old API's capitalised keys.
    """

    def decorate(view: Callable[[str, Mapping], Mapping]):
        @functools.wraps(view)
        def endpoint():
            try:
                merchant = _merchant(request.values)
                body = view(merchant, request.values)
            except Refusal as refusal:
                body = {"errorCode": refusal.code, "errorMessage": refusal.message}
            return _reply(_legacy(body) if legacy else body)

        wrapped = faultable("rbs", method)(endpoint)
        bp.add_url_rule(f"/payment/rest/{method}.do", method, wrapped, methods=["GET", "POST"])
        return view

    return decorate


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _merchant(values: Mapping) -> str:
    """The merchant login the call is made for: userName + password, or the API token (§2.1)."""
    config = current_app.config
    user = str(config["SANDBOX_RBS_USERNAME"])
    token = str(config.get("SANDBOX_RBS_TOKEN") or "")
    if token and values.get("token") and _same(values["token"], token):
        return user
    given_user, given_password = values.get("userName", ""), values.get("password", "")
    if _same(given_user, user) and _same(given_password, str(config["SANDBOX_RBS_PASSWORD"])):
        return user
    raise Refusal(5, "Access denied")


# register.do / registerPreAuth.do (§2.2) --------------------------------------------------
@api("register")
def register(merchant: str, values: Mapping) -> dict:
    return _register(merchant, values, pre_auth=False)


@api("registerPreAuth")
def register_pre_auth(merchant: str, values: Mapping) -> dict:
    return _register(merchant, values, pre_auth=True)


def _register(merchant: str, values: Mapping, pre_auth: bool) -> dict:
    fields = _registration(values)
    order_id = str(uuid.uuid4())
    # insert() refuses an existing key inside one transaction: of two concurrent registrations
    # of one number, exactly one wins; the other gets errorCode 1 (§2.2).
    if not store().insert(NUMBER, f"{merchant}:{fields['orderNumber']}", {"orderId": order_id}):
        raise Refusal(1, "Order with this number was already processed")
    now = store().now()
    timeout = fields.pop("sessionTimeoutSecs")
    expires_at = fields.pop("expirationDate") or now + timeout
    store().put(ORDER, order_id, _new_order(order_id, merchant, pre_auth, now, expires_at, fields))
    form_url = url_for(
        "rbs.payment_page",
        merchant=merchant,
        lang=fields["language"],
        mdOrder=order_id,
        _external=True,
    )
    return {"orderId": order_id, "formUrl": form_url}


def _new_order(order_id, merchant, pre_auth, now, expires_at, fields) -> dict:
    return {
        "id": order_id,
        "merchant": merchant,
        "preAuth": pre_auth,
        **fields,
        "created": now,
        "expiresAt": expires_at,
        "orderStatus": REGISTERED,
        "actionCode": -100,
        "actionCodeDescription": ACTION_TEXT[-100],
        "approvedAmount": 0,
        "depositedAmount": 0,
        "refundedAmount": 0,
        "card": None,
        "ip": None,
        "processing": False,
        "authDateTime": None,
        "depositedDate": None,
        "reversedDate": None,
        "refundedDate": None,
        "refunds": [],
        "callbacks": [],
    }


def _registration(values: Mapping) -> dict:
    """register's parameters, validated in the order a client is most likely to get wrong."""
    fields = _fields(values)
    fields["basket"] = _basket(fields["orderBundle"], fields["amount"])
    return fields


def _fields(values: Mapping) -> dict:
    return {
        "orderNumber": _order_number(values.get("orderNumber")),
        "amount": _amount(values.get("amount")),
        "currency": _currency(values.get("currency")),
        "returnUrl": _absolute_url(values.get("returnUrl"), "returnUrl", required=True),
        "failUrl": _absolute_url(values.get("failUrl"), "failUrl"),
        "callbackUrl": _absolute_url(values.get("dynamicCallbackUrl"), "dynamicCallbackUrl"),
        "description": _description(values.get("description")),
        "language": _language(values.get("language")),
        "email": (values.get("email") or "").strip(),
        "jsonParams": _json_object(values.get("jsonParams"), "jsonParams"),
        "orderBundle": _json_object(values.get("orderBundle"), "orderBundle"),
        "features": (values.get("features") or "").strip(),
        "sessionTimeoutSecs": _session_timeout(values.get("sessionTimeoutSecs")),
        "expirationDate": _expiration_date(values.get("expirationDate")),
    }


def _order_number(value: str | None) -> str:
    number = (value or "").strip()
    if not number:
        raise Refusal(4, "Order number is empty")
    if len(number) > MAX_ORDER_NUMBER:
        raise Refusal(5, f"orderNumber is longer than {MAX_ORDER_NUMBER} characters")
    return number


def _amount(value: str | None, name: str = "amount") -> int:
    # Integer minor units only: "10.45", "-1" and "1e3" are refused (§2.2, §2.5).
    if value is None or str(value).strip() == "":
        raise Refusal(4, f"{name.capitalize()} is empty")
    text = str(value).strip()
    if not re.fullmatch(r"[0-9]{1,15}", text):
        raise Refusal(5, f"Invalid {name}: a whole number of minor units (0 or more) is expected")
    return int(text)


def _currency(value: str | None) -> str:
    # Omitted → the merchant's currency; only ISO 4217 numeric codes are known (§2.2).
    text = (value or "").strip()
    if not text:
        return str(current_app.config.get("SANDBOX_RBS_CURRENCY", DEFAULT_CURRENCY))
    code = text.zfill(3) if text.isdigit() else text
    if code not in CURRENCIES:
        raise Refusal(3, f"Unknown currency {text!r}: an ISO 4217 numeric code is expected")
    return code


def _absolute_url(value: str | None, name: str, required: bool = False) -> str | None:
    text = (value or "").strip()
    if not text:
        if required:
            raise Refusal(4, f"{name} is empty")
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Refusal(4, f"{name} is invalid: an absolute URL with http(s) scheme is expected")
    return text


def _description(value: str | None) -> str:
    text = value or ""
    if len(text) > MAX_DESCRIPTION:
        raise Refusal(5, f"description is longer than {MAX_DESCRIPTION} characters")
    return text


def _language(value: str | None) -> str:
    # An unknown language is not an error: the page is shown in the default one.
    text = (value or "").strip().lower()
    return text if re.fullmatch(r"[a-z]{2}", text) else "en"


def _json_object(value: str | None, name: str) -> dict | None:
    # Nested objects travel as a JSON string inside one form field (§2.1).
    if value is None or value.strip() == "":
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise Refusal(5, f"{name} is not a valid JSON object")
    return parsed


def _basket(bundle: Mapping | None, amount: int) -> list[dict] | None:
    """``orderBundle.cartItems.items`` read into lines (name, quantity, price, amount, tax),
    refused (errorCode 5, a wrong parameter value) unless they add up to ``amount``.

    The protocol's rules: ``positionId`` unique, ``name`` and ``quantity`` {value, measure}
    mandatory, ``itemAmount`` = ``itemPrice`` × quantity where both are sent (§2.2, BPC's
    register parameters). That the lines add up to the amount is this sandbox's check: a shop
    that sends a basket should send the one it charges for.
    """
    if bundle is None:
        return None
    cart = bundle.get("cartItems")
    items = cart.get("items") if isinstance(cart, Mapping) else None
    if not isinstance(items, list):
        raise Refusal(5, "orderBundle: cartItems.items must be a list of items")
    lines, positions = [], set()
    for number, item in enumerate(items, start=1):
        line = _basket_line(item, number)
        if line["positionId"] in positions:
            raise Refusal(5, f"orderBundle: positionId {line['positionId']} is not unique")
        positions.add(line["positionId"])
        lines.append(line)
    added = sum(line["itemAmount"] for line in lines)
    if added != amount:
        raise Refusal(5, f"orderBundle: the items add up to {added}, not to the amount {amount}")
    return lines


def _basket_line(item, number: int) -> dict:
    where = f"orderBundle: item {number}"
    if not isinstance(item, Mapping):
        raise Refusal(5, f"{where} is not an object")
    position = item.get("positionId")
    name = item.get("name")
    quantity = item.get("quantity")
    if not _whole(position) or not isinstance(name, str) or not name.strip():
        raise Refusal(5, f"{where}: positionId and name are mandatory")
    if not isinstance(quantity, Mapping) or not str(quantity.get("measure") or "").strip():
        raise Refusal(5, f"{where}: quantity {{value, measure}} is mandatory")
    try:
        count = Decimal(str(quantity.get("value")))
    except ArithmeticError:
        count = Decimal(-1)
    if not count.is_finite() or count <= 0 or count != round(count, 3):
        raise Refusal(5, f"{where}: quantity.value must be a number above 0, 3 decimals at most")
    price, line_amount = item.get("itemPrice"), item.get("itemAmount")
    if price is None and line_amount is None:
        raise Refusal(5, f"{where}: itemAmount or itemPrice is mandatory")
    if any(v is not None and not _whole(v) for v in (price, line_amount)):
        raise Refusal(5, f"{where}: itemPrice and itemAmount are whole minor units")
    if line_amount is None:
        exact = count * int(str(price))
        if exact != exact.to_integral_value():
            raise Refusal(5, f"{where}: itemPrice × quantity is not a whole minor unit")
        line_amount = int(exact)
    elif price is not None and count * int(price) != int(line_amount):
        raise Refusal(5, f"{where}: itemAmount is not itemPrice × quantity.value")
    tax = item.get("tax")
    if tax is not None and (
        not isinstance(tax, Mapping)
        or ("taxType" in tax and not _whole(tax["taxType"]))
        or ("taxSum" in tax and not _whole(tax["taxSum"]))
    ):
        raise Refusal(5, f"{where}: tax must be {{taxType, taxSum}} in whole numbers")
    return {
        "positionId": int(str(position)),
        "name": name,
        "quantity": float(count) if count != count.to_integral_value() else int(count),
        "measure": str(quantity["measure"]),
        "itemPrice": None if price is None else int(price),
        "itemAmount": int(line_amount),
        "itemCode": str(item.get("itemCode") or ""),
        "taxType": None if tax is None or "taxType" not in tax else int(tax["taxType"]),
        "taxSum": None if tax is None or "taxSum" not in tax else int(tax["taxSum"]),
    }


def _whole(value) -> bool:
    """A JSON whole number of zero or more (numbers may come as strings, §2.1)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int | str) and re.fullmatch(r"[0-9]{1,18}", str(value)) is not None


def _session_timeout(value: str | None) -> int:
    if value is None or value.strip() == "":
        return int(current_app.config["SANDBOX_RBS_SESSION_TIMEOUT"])
    if not re.fullmatch(r"[0-9]{1,9}", value.strip()) or int(value) < 1:
        raise Refusal(5, "sessionTimeoutSecs must be a positive whole number of seconds")
    return int(value)


def _expiration_date(value: str | None) -> float | None:
    # yyyy-MM-ddTHH:mm:ss; it wins over sessionTimeoutSecs (§2.2). Read as UTC here.
    if value is None or value.strip() == "":
        return None
    try:
        return float(timegm(time.strptime(value.strip(), "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        raise Refusal(5, "expirationDate must look like yyyy-MM-ddTHH:mm:ss") from None


# Finding orders, and the session lifetime -----------------------------------------------------
def _due(order: Mapping, now: float) -> bool:
    return order["orderStatus"] in OPEN and now >= order["expiresAt"]


def _expire_if_due(order: dict, now: float) -> list[tuple[str, int]]:
    """An unpaid order past its lifetime is declined with actionCode -2007 (§2.8, §4.2.5)."""
    if not _due(order, now):
        return []
    _set_action(order, -2007)
    order.update(orderStatus=DECLINED, processing=False)
    return [("declinedByTimeout", 0)]


def _load(app, order_id: str) -> dict | None:
    """The order as it is now: expired first if its time has come (and reported once)."""
    s = app.extensions["sandbox_store"]
    now = s.now()
    order = s.get(ORDER, order_id)
    if order is None or not _due(order, now):
        return order
    order, events = s.update(ORDER, order_id, lambda doc: _expire_if_due(doc, now))
    _notify_all(app, order, events)
    return order


def sweep(app) -> None:
    """Expire every order whose time has come (run when the control API moves the clock)."""
    now = app.extensions["sandbox_store"].now()
    for order in app.extensions["sandbox_store"].all(ORDER):
        if _due(order, now):
            _load(app, order["id"])


@bp.record_once
def _register_sweep(state) -> None:
    state.app.extensions.setdefault("sandbox_sweeps", []).append(sweep)


def _order_for(merchant: str, values: Mapping) -> dict:
    """The order named by orderId, or by orderNumber (orderId wins if both, §2.4)."""
    order_id = (values.get("orderId") or "").strip()
    number = (values.get("orderNumber") or "").strip()
    if not order_id and not number:
        raise Refusal(5, "orderId or orderNumber is required")
    if not order_id:
        index = store().get(NUMBER, f"{merchant}:{number}")
        order_id = index["orderId"] if index else ""
    order = _load(this_app(), order_id) if order_id else None
    if order is None or order["merchant"] != merchant:
        raise Refusal(6, "Order not found")
    return order


def _change(order_id: str, change: Callable[[dict], object]):
    """Apply ``change`` atomically; a Refusal raised inside rolls everything back."""
    return store().update(ORDER, order_id, change)


def _set_action(order: dict, code: int) -> None:
    order["actionCode"] = code
    order["actionCodeDescription"] = ACTION_TEXT[code]


def _require_status(order: Mapping, allowed: tuple[int, ...], what: str) -> None:
    status = order["orderStatus"]
    if status not in allowed:
        needed = " or ".join(f"{s} ({STATUS_NAMES[s]})" for s in allowed)
        raise Refusal(
            7,
            f"{what} is not possible: the order's status is {status} ({STATUS_NAMES[status]}); "
            f"it needs {needed}",
        )


# getOrderStatusExtended.do and the legacy getOrderStatus.do (§2.4) ----------------------------
@api("getOrderStatusExtended")
def get_order_status_extended(merchant: str, values: Mapping) -> dict:
    return _status_reply(merchant, values)


@api("getOrderStatus", legacy=True)
def get_order_status(merchant: str, values: Mapping) -> dict:
    return _status_reply(merchant, values)


def _status_reply(merchant: str, values: Mapping) -> dict:
    fault, params = protocol_fault()
    if fault == "error_code":
        raise Refusal(int(params.get("code", 7)), str(params.get("message", "System error")))
    return _tampered(_status_body(_order_for(merchant, values)), fault, params)


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


def _status_body(order: Mapping) -> dict:
    body = {
        **SUCCESS,
        "orderNumber": order["orderNumber"],
        "orderStatus": order["orderStatus"],
        "actionCode": order["actionCode"],
        "actionCodeDescription": order["actionCodeDescription"],
        "amount": order["amount"],
        "currency": order["currency"],
        "date": _ms(order["created"]),
        "orderDescription": order["description"],
    }
    if order["ip"]:
        body["ip"] = order["ip"]
    body["merchantOrderParams"] = [
        {"name": str(k), "value": v if isinstance(v, str) else json.dumps(v)}
        for k, v in (order["jsonParams"] or {}).items()
    ]
    body["attributes"] = [{"name": "mdOrder", "value": order["id"]}]
    if order["card"]:
        body["cardAuthInfo"] = dict(order["card"])
        body["paymentWay"] = "CARD"
    if order["authDateTime"] is not None:
        body["authDateTime"] = _ms(order["authDateTime"])
        body["terminalId"] = TERMINAL_ID
    for name in ("depositedDate", "reversedDate", "refundedDate"):
        if order[name] is not None:
            body[name] = _ms(order[name])
    body["paymentAmountInfo"] = {
        "paymentState": PAYMENT_STATE[order["orderStatus"]],
        "approvedAmount": order["approvedAmount"],
        "depositedAmount": _deposited_as_shown(order),
        "refundedAmount": order["refundedAmount"],
        "totalAmount": order["amount"],
    }
    return body


def _tampered(body: dict, fault: str | None, params: Mapping) -> dict:
    """Status-query faults: an answer that no longer matches the order the shop placed."""
    if fault == "tamper_amount":
        body["amount"] = int(params.get("amount", body["amount"] + 100))
    elif fault == "tamper_currency":
        body["currency"] = str(params.get("currency", "840"))
    elif fault == "status":
        status = int(params.get("orderStatus", DEPOSITED))
        body["orderStatus"] = status
        body["paymentAmountInfo"]["paymentState"] = PAYMENT_STATE.get(status, "CREATED")
    return body


def _legacy(body: Mapping) -> dict:
    """getOrderStatus.do answers a smaller set with capitalised keys (§2.1)."""
    if "orderStatus" not in body:
        return {"ErrorCode": body["errorCode"], "ErrorMessage": body["errorMessage"]}
    legacy = {
        "ErrorCode": body["errorCode"],
        "ErrorMessage": body["errorMessage"],
        "OrderStatus": body["orderStatus"],
        "OrderNumber": body["orderNumber"],
    }
    card = body.get("cardAuthInfo")
    if card:
        legacy.update(
            Pan=card["maskedPan"],
            expiration=card["expiration"],
            cardholderName=card["cardholderName"],
        )
    legacy.update(Amount=body["amount"], currency=body["currency"])
    if card:
        legacy["approvalCode"] = card["approvalCode"]
    if body.get("ip"):
        legacy["Ip"] = body["ip"]
    return legacy


# deposit.do, reverse.do, refund.do (§2.5) -----------------------------------------------------
@api("deposit")
def deposit(merchant: str, values: Mapping) -> dict:
    order = _order_for(merchant, values)
    amount = _amount(values.get("amount"))
    _same_currency(order, values)
    now = store().now()

    def change(doc: dict):
        _require_status(doc, (APPROVED,), "Deposit")
        # amount 0 = the full approved amount; less = a partial capture, the rest is released.
        full = doc["approvedAmount"]
        value = amount or full
        if value > full:
            raise Refusal(5, f"Deposit amount {value} exceeds the approved amount {full}")
        doc.update(orderStatus=DEPOSITED, depositedAmount=value, depositedDate=now)

    order, _ = _change(order["id"], change)
    _notify(this_app(), order, "deposited", 1)
    return dict(SUCCESS)


@api("reverse")
def reverse(merchant: str, values: Mapping) -> dict:
    order = _order_for(merchant, values)
    amount = _optional_amount(values.get("amount"), "amount")
    if amount not in (None, 0, order["approvedAmount"]):
        raise Refusal(5, "Partial reversal is not allowed for this merchant")
    _same_currency(order, values)
    now = store().now()
    window = float(current_app.config["SANDBOX_RBS_REVERSE_WINDOW"])

    def change(doc: dict):
        # A payment can be reversed only once, and only within the bank's window (§2.5).
        if doc["orderStatus"] == REVERSED:
            raise Refusal(7, "The order has already been reversed: reversal is possible once")
        _require_status(doc, (APPROVED, DEPOSITED), "Reverse")
        if doc["orderStatus"] == DEPOSITED:
            # A one-phase payment is cancelled, not refunded, until the bank settles it: after
            # the window (or once anything was refunded) only refund.do gives money back.
            if doc["refundedAmount"]:
                raise Refusal(7, "Reverse is not possible: part of the payment was refunded")
            if now - doc["depositedDate"] > window:
                raise Refusal(
                    7,
                    "Reverse is not possible: the payment was deposited more than "
                    f"{window:g} seconds ago; refund it instead",
                )
            doc["depositedAmount"] = 0  # the deposit is cancelled: no money was taken
        doc.update(orderStatus=REVERSED, reversedDate=now)

    order, _ = _change(order["id"], change)
    _notify(this_app(), order, "reversed", 1)
    return dict(SUCCESS)


@api("refund")
def refund(merchant: str, values: Mapping) -> dict:
    fault, params = protocol_fault()
    if fault == "error_code":
        raise Refusal(int(params.get("code", 7)), str(params.get("message", "Refund refused")))
    order = _order_for(merchant, values)
    amount = _amount(values.get("amount"))
    expected = _optional_amount(values.get("expectedDepositedAmount"), "expectedDepositedAmount")
    external_id = (values.get("externalRefundId") or "").strip() or None
    _same_currency(order, values)
    now = store().now()

    def change(doc: dict):
        return _apply_refund(doc, amount, expected, external_id, now)

    order, (is_new, _record) = _change(order["id"], change)
    if is_new:
        _notify(this_app(), order, "refunded", 1)
    return dict(SUCCESS)


def _apply_refund(doc: dict, amount: int, expected, external_id, now: float):
    # The same externalRefundId is the same refund: it gets the same answer and moves no money
    # twice (§2.5). Only refunds that happened are remembered; a refused one changed nothing.
    for earlier in doc["refunds"]:
        if external_id and earlier["externalRefundId"] == external_id:
            return False, earlier
    _require_status(doc, (DEPOSITED, REFUNDED), "Refund")
    deposited = doc["depositedAmount"]
    if expected is not None and expected != _deposited_as_shown(doc):
        raise Refusal(
            7, f"expectedDepositedAmount {expected} does not match the deposited amount {deposited}"
        )
    left = deposited - doc["refundedAmount"]
    if left <= 0:
        raise Refusal(7, "The order has been refunded in full: nothing is left to refund")
    value = amount or left  # 0 = everything still refundable
    if value > left:
        raise Refusal(
            5, f"Refund amount {value} exceeds the refundable amount {left} ({deposited} deposited)"
        )
    record = {"externalRefundId": external_id, "amount": value, "date": now}
    doc["refunds"].append(record)
    doc.update(orderStatus=REFUNDED, refundedAmount=doc["refundedAmount"] + value, refundedDate=now)
    return True, record


def _deposited_as_shown(order: Mapping) -> int:
    """The deposited amount as this deployment reports it, and as ``expectedDepositedAmount``
    is held against. The protocol's text reads either way, and gateways differ: the total
    deposited (the default), or with ``rbs:refund_guard`` = "net" what is left of it after the
    refunds made so far."""
    if store().setting("rbs:refund_guard", "deposited") == "net":
        return int(order["depositedAmount"]) - int(order["refundedAmount"])
    return int(order["depositedAmount"])


def _optional_amount(value: str | None, name: str) -> int | None:
    return None if value in (None, "") else _amount(value, name)


def _same_currency(order: Mapping, values: Mapping) -> None:
    given = (values.get("currency") or "").strip()
    if given and given.zfill(3) != order["currency"]:
        raise Refusal(5, f"Currency {given} does not match the order's currency")


# Callbacks (§2.6, §4.2.7) ---------------------------------------------------------------------
def checksum(params: Mapping[str, str], key: str) -> str:
    """Upper-case hex HMAC-SHA256 over ``name;value;`` pairs sorted by name, without the
    ``checksum`` and ``sign_alias`` parameters themselves (§2.6)."""
    names = sorted(name for name in params if name not in ("checksum", "sign_alias"))
    signed = "".join(f"{name};{params[name]};" for name in names)
    return hmac.new(key.encode(), signed.encode(), hashlib.sha256).hexdigest().upper()


def _notify_all(app, order: Mapping, events: list[tuple[str, int]]) -> None:
    for operation, status in events:
        _notify(app, order, operation, status)


def _callback_url(app, order: Mapping) -> str | None:
    # The order's dynamicCallbackUrl overrides the merchant profile's static URL (§2.6).
    return order.get("callbackUrl") or app.config.get("SANDBOX_RBS_CALLBACK_URL") or None


def _notify(app, order: Mapping, operation: str, status: int) -> dict | None:
    """Send one callback for ``order`` (subject to an armed ``callback`` fault)."""
    url = _callback_url(app, order)
    if not url:
        return None
    s: Store = app.extensions["sandbox_store"]
    fault, params = s.take_fault("rbs", "callback") or (None, {})
    data = {
        "mdOrder": order["id"],
        "orderNumber": order["orderNumber"],
        "operation": operation,
        "status": str(status),
        "amount": str(order["amount"]),  # a configured extra parameter (§2.6)
    }
    _sign(data, str(app.config.get("SANDBOX_RBS_CALLBACK_KEY") or ""), fault, params)
    job = {
        "url": url,
        "method": _callback_method(s),
        "data": data,
        # BPC retries every 30 s up to 3 failures (§2.6); the sandbox waits less by default.
        "max_tries": 3,
        "retry_delay": float(s.setting("rbs:callback_retry_delay", 0.5)),
    }
    if fault == "delay":
        job["delay"] = float(params.get("seconds", 5))
    sent = None
    if fault != "drop":
        copies = int(params.get("copies", 2)) if fault == "duplicate" else 1
        sent = delivery.enqueue(app, "rbs", job, copies=copies)
    note = {"operation": operation, "status": status, "fault": fault, "job": sent and sent["id"]}
    s.update(ORDER, order["id"], lambda doc: doc["callbacks"].append(note))
    return note


def _callback_method(s) -> str:
    # BPC sends callbacks by GET or by POST, per merchant profile (§2.6); nothing else.
    return "GET" if str(s.setting("rbs:callback_method", "POST")).upper() == "GET" else "POST"


def _sign(data: dict, key: str, fault: str | None, params: Mapping) -> None:
    if fault == "tamper_amount":
        # A valid checksum over a wrong amount: only comparing with the order catches it.
        data["amount"] = str(params.get("amount", int(data["amount"]) + 100))
    if not key or fault == "no_checksum":
        return  # checksum callbacks are a merchant option; without a key none is sent
    if fault == "bad_checksum":
        data["checksum"] = checksum(data, key + ":not-the-key")
        return
    data["checksum"] = checksum(data, key)


@bp.post("/__control/callback")
def control_callback():
    """Fire a callback for an order as it is now: {"mdOrder", "operation", "status"}.

    For replays and out-of-order deliveries (a late ``deposited`` after a refund, …). Part of
    the control API: it needs the control token like ``/__control/*``.
    """
    control.require_token()
    body = request.get_json(silent=True) or {}
    order = store().get(ORDER, str(body.get("mdOrder", "")))
    status = str(body.get("status", 1))
    if order is None or not body.get("operation") or status not in ("0", "1"):
        abort(400, "mdOrder of a known order, operation and status 0 or 1 are required")
    note = _notify(this_app(), order, str(body["operation"]), int(status))
    return {"sent": note}


# The hosted payment page (§2.3, §4.2.4) -------------------------------------------------------
def _page_order(merchant: str | None = None) -> dict:
    order_id = request.values.get("mdOrder", "")
    order = _load(this_app(), order_id) if order_id else None
    if order is None or (merchant is not None and order["merchant"] != merchant):
        abort(404)
    return order


def _with_query(url: str, extra: Mapping[str, str]) -> str:
    """Append ``extra`` to ``url``'s query with ``?`` or ``&``, keeping what is there verbatim."""
    parts = urlsplit(url)
    added = urlencode(extra)
    query = f"{parts.query}&{added}" if parts.query else added
    return urlunsplit(parts._replace(query=query))


def _outcome_url(order: Mapping) -> str:
    # Success (held counts) → returnUrl; failure or cancel → failUrl, else returnUrl (§2.3).
    if order["orderStatus"] in SUCCEEDED:
        base = order["returnUrl"]
    else:
        base = order["failUrl"] or order["returnUrl"]
    return _with_query(base, {"orderId": order["id"], "lang": order["language"]})


def _major(amount: int, currency: str) -> str:
    code, exponent = CURRENCIES.get(currency, (currency, 2))
    if exponent == 0:
        return f"{amount} {code}"
    whole, fraction = divmod(amount, 10**exponent)
    return f"{whole}.{fraction:0{exponent}d} {code}"


def _page_url(order: Mapping, endpoint: str = "rbs.payment_page") -> str:
    if endpoint == "rbs.acs":
        return url_for(endpoint, mdOrder=order["id"])
    merchant, lang = order["merchant"], order["language"]
    return url_for(endpoint, merchant=merchant, lang=lang, mdOrder=order["id"])


def _render_form(order: Mapping, error: str | None = None, values: Mapping | None = None):
    return render_template(
        "sandbox/rbs_payment.html",
        order=order,
        lang=order["language"],
        amount=_major(order["amount"], order["currency"]),
        action=_page_url(order),
        cards=[(pan, text) for pan, (_, text) in TEST_CARDS.items()],
        basket=[
            (line["name"], line["quantity"], _major(line["itemAmount"], order["currency"]))
            for line in order.get("basket") or []
        ],
        error=error,
        values=values or {},
    )


def _render_notice(order: Mapping, title: str, message: str, status: int = 200):
    page = render_template(
        "sandbox/rbs_notice.html",
        title=title,
        message=message,
        link=_outcome_url(order),
        amount=_major(order["amount"], order["currency"]),
        order=order,
    )
    return page, status


def _settled_page(order: Mapping):
    """What the page shows for an order that is not waiting for a card."""
    status = order["orderStatus"]
    if status == DECLINED and order["actionCode"] == -2007:
        page = render_template("sandbox/rbs_expired.html", order=order, link=_outcome_url(order))
        return page, 200
    if status == ACS:
        return redirect(_page_url(order, "rbs.acs"), code=303)
    if status == REGISTERED and order["processing"]:
        return _render_notice(
            order,
            "Payment in progress",
            "The bank has not answered yet. The shop will learn the outcome; you may close "
            "this page.",
        )
    if status == REGISTERED:
        return redirect(_page_url(order), code=303)
    return _render_notice(
        order, "Order already processed", "This payment has been completed and cannot be changed."
    )


@bp.route("/payment/merchants/<merchant>/payment_<lang>.html", methods=["GET", "POST"])
def payment_page(merchant: str, lang: str):
    order = _page_order(merchant)
    open_for_payment = order["orderStatus"] == REGISTERED and not order["processing"]
    if request.method == "GET":
        return _render_form(order) if open_for_payment else _settled_page(order)
    if not open_for_payment:
        return _decided(order)
    if request.form.get("action") == "cancel":
        return _decide(order, lambda doc, now: _decline(doc, 10))
    card, error = _read_card(request.form, store().now())
    if card is None:  # then error says why
        kept = {k: request.form.get(k, "") for k in ("expiry", "cardholder")}
        return _render_form(order, error, kept)
    ip = request.remote_addr
    return _decide(order, lambda doc, now: _pay(doc, card, ip, now))


def _decided(order: Mapping):
    """A second POST (back button, double click) changes nothing: send the browser where the
    first decision sent it."""
    status = order["orderStatus"]
    if status in SUCCEEDED or (status == DECLINED and order["actionCode"] != -2007):
        return redirect(_outcome_url(order), code=303)
    return _settled_page(order)


def _decide(order: Mapping, apply: Callable[[dict, float], list | None]):
    """Apply the customer's decision once, atomically, then report it and send the browser on."""
    now = store().now()

    def change(doc: dict):
        # Only the first decision counts: the state is read again inside the transaction.
        if doc["orderStatus"] != REGISTERED or doc["processing"] or _due(doc, now):
            return None
        return apply(doc, now)

    doc, events = _change(order["id"], change)
    if events is None:
        return _decided(cast(dict, _load(this_app(), order["id"])))
    # Callbacks go out before the redirect is answered, as a fast gateway does (§2.8).
    _notify_all(this_app(), doc, events)
    if doc["orderStatus"] in (ACS, REGISTERED):
        return _settled_page(doc)
    return redirect(_outcome_url(doc), code=303)


def _read_card(form: Mapping, now: float) -> tuple[dict | None, str | None]:
    pan = cards.digits(form.get("pan", ""))
    if not cards.luhn_ok(pan):
        return None, "The card number is not valid. Check the digits and try again."
    match = re.fullmatch(r"\s*([0-9]{2})\s*/\s*([0-9]{2})\s*", form.get("expiry", ""))
    if not match or not 1 <= int(match[1]) <= 12:
        return None, "Enter the expiry date as MM/YY, for example 12/34."
    year, month = 2000 + int(match[2]), int(match[1])
    today = time.gmtime(now)
    if (year, month) < (today.tm_year, today.tm_mon):
        return None, "The card has expired."
    if not re.fullmatch(r"[0-9]{3,4}", form.get("cvc", "").strip()):
        return None, "Enter the 3 or 4 digit security code (CVC)."
    holder = " ".join(form.get("cardholder", "").split())[:64].upper()
    return {"pan": pan, "expiration": f"{year}{month:02d}", "holder": holder}, None


def _pay(doc: dict, card: Mapping, ip: str | None, now: float) -> list:
    behaviour = TEST_CARDS.get(card["pan"], ("approve", ""))[0]
    # Only the masked number is kept, as a gateway reports it (first6**last4).
    doc["card"] = {
        "maskedPan": cards.mask(card["pan"]),
        "expiration": card["expiration"],
        "cardholderName": card["holder"],
        "approvalCode": "",
        "paymentSystem": cards.brand(card["pan"]),
    }
    doc["ip"] = ip
    if behaviour == "3ds":
        doc["orderStatus"] = ACS  # the issuer's ACS page comes next
        return []
    if behaviour == "stall":
        doc["processing"] = True  # stays at orderStatus 0 until the session lifetime ends
        return []
    if behaviour == "decline":
        return _decline(doc, 2001)
    if behaviour == "cancel":
        return _decline(doc, 10)
    return _authorize(doc, now, hold=doc["preAuth"] or behaviour == "hold")


def _authorize(doc: dict, now: float, hold: bool) -> list:
    """Approve: registerPreAuth (or a hold-only card) holds → 1; register also deposits → 2."""
    _set_action(doc, 0)
    doc["card"]["approvalCode"] = f"{secrets.randbelow(10**6):06d}"
    doc.update(approvedAmount=doc["amount"], authDateTime=now)
    if hold:
        doc["orderStatus"] = APPROVED
        return [("approved", 1)]
    doc.update(orderStatus=DEPOSITED, depositedAmount=doc["amount"], depositedDate=now)
    return [("deposited", 1)]


def _decline(doc: dict, action_code: int) -> list:
    # A failed payment step is reported as that step's operation with status 0 (§2.6).
    _set_action(doc, action_code)
    doc["orderStatus"] = DECLINED
    return [("approved" if doc["preAuth"] else "deposited", 0)]


@bp.route("/payment/acs.html", methods=["GET", "POST"])
def acs():
    """The issuer's 3-D Secure page, simulated: orderStatus is 5 while the customer is here."""
    order = _page_order()
    if order["orderStatus"] != ACS:
        return _settled_page(order) if request.method == "GET" else _decided(order)
    if request.method == "GET":
        return render_template(
            "sandbox/rbs_acs.html",
            order=order,
            amount=_major(order["amount"], order["currency"]),
            action=_page_url(order, "rbs.acs"),
        )
    return _complete_acs(order)


def _complete_acs(order: Mapping):
    now = store().now()

    def change(doc: dict):
        if doc["orderStatus"] != ACS or _due(doc, now):
            return None
        return _authorize(doc, now, hold=doc["preAuth"])

    doc, events = _change(order["id"], change)
    if events is None:
        return _decided(cast(dict, _load(this_app(), order["id"])))
    _notify_all(this_app(), doc, events)
    return redirect(_outcome_url(doc), code=303)
