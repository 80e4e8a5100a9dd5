"""InterPay Web-Redirect: StartSession → hosted page → browser return → GetResult → Ack.

Two equivalent servers share one state, as InterPay's svra and svrb do (gateways.md §1.2):

``/interpay/svra/`` and ``/interpay/svrb/``   the API, both encodings at the base path:
    a JSON object POSTed as ``application/json`` (JSON reply), or ``NAME=value&…`` in the POST
    body or as the URL tail after the ``/`` (same-format reply; a bare ``JSON`` token asks for
    a JSON reply). ``ACTION`` is ``StartSession``, ``GetResult`` or ``Ack``.
``/interpay/api/HOSTPYMT/pay/?SecureID=…``   the hosted payment page (card form, Cancel).

Run-time settings (``POST /__control/settings``):
``interpay:amount_mode``   "cents" (default: an AMT without a decimal point is cents, as the
                           changelog says) or "strict" (9024 INVALID AMT FORMAT, the older rule);
``interpay:page_timeout``  seconds a hosted page may stay open (default 900) → 9004 / Status 5050;
``interpay:ack_required``  false: approvals are captured at once, as on a terminal without Ack;
``interpay:dynamic_url``   false: SUCCESSURL/FAILUREURL overrides are refused (9001), the
                           terminal's own ``SANDBOX_INTERPAY_SUCCESSURL``/``…_FAILUREURL`` apply.

App config: ``SANDBOX_INTERPAY_TERMID``/``…_PASS`` (the one terminal), ``…_ACK_WINDOW`` (180 s
from the success redirect), and optionally ``…_CURRENCY`` (shown on the page; default CAD).

Faults (``gateway="interpay"``): ops are ``svra:StartSession``, ``svrb:GetResult``, … (one server
only) or the bare action (whichever server comes first); ``pay`` for the hosted page; ``return``
for the browser return. Besides the common faults of ``sandbox.faults``, the API knows
``system_error`` (answers ``CODE=9100``, or ``params.code``, without processing) and
``ip_denied`` (``1001 ACCESS DENIED``); ``return`` knows ``no_secureid`` (a failure return
without ``SecureID``). ``hang`` processes the call first and answers late, so a client's retry
meets what the lost call did.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import string
import time
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import quote, unquote_plus, urlencode, urlsplit, urlunsplit

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

from sandbox import cards
from sandbox.faults import MAX_SLEEP, faultable, store

bp = Blueprint("interpay", __name__)

SERVERS = ("svra", "svrb")
ACTIONS = ("StartSession", "GetResult", "Ack")
SECUREID_ALPHABET = string.ascii_lowercase + string.digits

# Return Status values on the browser redirect (gateways.md §1.3).
STATUS_APPROVED = "5000"
STATUS_TIMED_OUT = "5050"
STATUS_CANCELLED = "5071"
STATUS_DECLINED = "5073"

# Test cards (gateways.md §4.1): issuer declines and the card whose processing fails.
DECLINING_CARDS = {
    "4000000000000002": ("0005", "DECLINED"),
    "4000000000009995": ("0051", "INSUFFICIENT FUNDS"),
}
SYSTEM_ERROR_CARD = "4000000000000119"
# How many GetResult calls the system-error card answers with 9100 before it settles as not
# completed: two, so that a client meets it on both servers before it can learn the outcome.
SYSTEM_ERROR_ANSWERS = 2
CARD_TYPES = {"VISA": "V", "MASTERCARD": "M", "AMEX": "A"}
TEST_CARDS = (
    ("4111111111111111", "approved (Visa)"),
    ("5555555555554444", "approved (Mastercard)"),
    ("378282246310005", "approved (Amex)"),
    ("4000000000000002", "declined by the issuer (Status 5073)"),
    ("4000000000009995", "declined: insufficient funds (Status 5073)"),
    ("4000000000000119", "processing fails: GetResult answers 9100"),
)

REQUESTID = re.compile(r"[0-9]{4,20}")  # liberal: the old page says 4–10, the new 5–20 (§1.7)
REFNUM = re.compile(r"[A-Za-z0-9/-]{8,40}")
EMAIL = re.compile(r"[^@\s\\]+@[^@\s\\]+\.[^@\s\\]+")
AMOUNT = re.compile(r"([0-9]{1,9})(?:\.([0-9]{0,2}))?")
SECUREID = re.compile(r"[a-z0-9]{20}")
MAX_AMOUNT = 9_999_999  # cents: 99,999.99 per transaction on the sandbox terminal


class Refusal(Exception):
    """An InterPay error reply: ``CODE`` and ``TEXT``."""

    def __init__(self, code: str, text: str):
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


@dataclass
class Message:
    """One API request as the gateway reads it, whatever its encoding."""

    fields: dict[str, str] = field(default_factory=dict)
    wants_json: bool = False
    problem: str = ""  # why the message could not be read (answered 9001)


# The API ------------------------------------------------------------------------------------
@bp.route("/<any(svra, svrb):server>/", methods=("GET", "POST"))
@bp.route("/<any(svra, svrb):server>/<path:tail>", methods=("GET", "POST"))
def api(server: str, tail: str = ""):
    """One API call on ``server``: StartSession, GetResult or Ack (``tail``: read raw)."""
    started = time.monotonic()
    message = _read_message(server)
    name, params = _take_fault(server, message.fields.get("ACTION", "")) or (None, {})
    instead = _fault_instead(name, params)
    if instead is not None:
        return instead
    if name == "delay":
        time.sleep(min(float(params.get("seconds", 1.0)), MAX_SLEEP))
    reply = _fault_reply(name, params) or _process(message, server)
    response = _reply(reply, message.wants_json, started)
    if name == "hang":
        # The call *was* processed (a session may now exist); only its answer is late. Sleeping
        # after processing is what makes a client's retry meet 9012 DUPLICATE REQUESTID (§1.7).
        time.sleep(min(float(params.get("seconds", 30.0)), MAX_SLEEP))
    if name == "wrong_content_type":
        response.mimetype = "text/html"
    return response


def _fault_instead(name: str | None, params: dict) -> Response | None:
    """A transport-level fault that answers instead of the gateway."""
    if name in ("http_500", "http_503", "http_400"):
        status = int(name.removeprefix("http_"))
        return Response(f"sandbox fault: HTTP {status}", status=status, mimetype="text/plain")
    if name == "html":
        page = "<!doctype html><title>Service unavailable</title><h1>Maintenance</h1>"
        return Response(page, status=200, mimetype="text/html")
    if name == "garbage":
        return Response(params.get("body", "CODE=00"), status=200, mimetype="text/plain")
    return None


def _fault_reply(name: str | None, params: dict) -> dict[str, str] | None:
    """An InterPay error the gateway answers without processing the message."""
    if name == "system_error":
        code = str(params.get("code", "9100"))
        return _error(code, "GATEWAY SYSTEM ERROR" if code == "9100" else "GENERAL ERROR")
    if name == "ip_denied":
        return _error("1001", "ACCESS DENIED")
    return None


def _take_fault(server: str, action: str) -> tuple[str, dict] | None:
    taken = store().take_fault("interpay", f"{server}:{action}")
    return taken or store().take_fault("interpay", action or "?")


def _process(message: Message, server: str) -> dict[str, str]:
    try:
        fields = _authenticate(message)
        handler = {"StartSession": start_session, "GetResult": get_result, "Ack": ack}[
            fields["ACTION"]
        ]
        return handler(fields, server)
    except Refusal as refusal:
        return _error(refusal.code, refusal.text)


def _authenticate(message: Message) -> dict[str, str]:
    if message.problem:
        raise Refusal("9001", "WEB REDIRECT INPUT ERROR")
    fields = message.fields
    if any("\\" in value for value in fields.values()):
        raise Refusal("9001", "WEB REDIRECT INPUT ERROR")  # backslashes are forbidden (§1.7)
    config = current_app.config
    if fields.get("TERMID") != config["SANDBOX_INTERPAY_TERMID"]:
        raise Refusal("1001", "ACCESS DENIED")
    # PASS is case-sensitive (§1.2): compare exactly, in constant time.
    if not secrets.compare_digest(
        fields.get("PASS", "").encode(), str(config["SANDBOX_INTERPAY_PASS"]).encode()
    ):
        raise Refusal("9022", "ACCESS DENIED")
    if fields.get("TYPE") != "W":
        raise Refusal("9001", "WEB REDIRECT INPUT ERROR")
    if fields.get("ACTION") not in ACTIONS:
        raise Refusal("9010", "INVALID ACTION")
    return fields


# StartSession -------------------------------------------------------------------------------
def start_session(fields: dict[str, str], server: str) -> dict[str, str]:
    if "SECUREID" in fields:
        raise Refusal("9001", "SECUREID NOT ALLOWED")
    requestid = fields.get("REQUESTID", "")
    if not requestid:
        raise Refusal("9011", "MISSING REQUESTID")
    if not REQUESTID.fullmatch(requestid):
        raise Refusal("9011", "INVALID REQUESTID")
    cents = _amount(fields.get("AMT", ""))
    email = fields.get("CUSTEMAIL", "")
    if len(email) > 60 or not EMAIL.fullmatch(email):
        raise Refusal("9014", "INVALID OR MISSING CUST EMAIL")
    if fields.get("SCHEDID") and not fields.get("CUSTNAME"):
        raise Refusal("9016", "MISSING CUST NAME")
    if len(fields.get("CUSTNAME", "")) > 40 or len(fields.get("DESC", "")) > 60:
        raise Refusal("9001", "WEB REDIRECT INPUT ERROR")
    if fields.get("LANG", "E") not in ("E", "F"):
        raise Refusal("9001", "WEB REDIRECT INPUT ERROR")
    refnum = fields.get("REFNUM", "")
    if refnum and not REFNUM.fullmatch(refnum):
        raise Refusal("9013", "INVALID REFNUM")
    success_url, failure_url = _return_urls(fields)
    termid = fields["TERMID"]
    if refnum and store().get("interpay_refnum", f"{termid}:{refnum}"):
        raise Refusal("9013", "INVALID REFNUM")  # REFNUM is unique within the batch
    secureid = _new_secureid()
    # The REQUESTID is claimed atomically and for good: a retry of a call that was processed
    # meets 9012 instead of opening a second session (the protocol's idempotency rule, §1.7).
    claim = {"termid": termid, "requestid": requestid, "secureid": secureid, "server": server}
    if not store().insert("interpay_requestid", f"{termid}:{requestid}", claim):
        raise Refusal("9012", "DUPLICATE REQUESTID")
    refnum = refnum or _new_refnum(termid)
    if not store().insert("interpay_refnum", f"{termid}:{refnum}", {"secureid": secureid}):
        raise Refusal("9013", "INVALID REFNUM")
    store().put(
        "interpay_session",
        secureid,
        _new_session(fields, server, cents, refnum, success_url, failure_url, secureid),
    )
    return {
        "TEXT": "SUCCESS",
        "CODE": "0000",
        "SECUREID": secureid,
        "URL": _external_url("interpay.pay", SecureID=secureid),
        "HOST": server,
    }


def _amount(text: str) -> int:
    """AMT to cents. Integers are cents in "cents" mode and refused in "strict" mode (§1.2)."""
    match = AMOUNT.fullmatch(text)
    if not match:
        raise Refusal("9024", "INVALID AMT FORMAT")
    whole, fraction = match.groups()
    if fraction is None:
        if store().setting("interpay:amount_mode", "cents") == "strict":
            raise Refusal("9024", "INVALID AMT FORMAT")
        cents = int(whole)  # "500" is $5.00 and "5" is $0.05: the changelog's rule
    else:
        cents = int(whole) * 100 + int((fraction or "").ljust(2, "0"))  # "5." is $5.00
    if cents > MAX_AMOUNT:
        raise Refusal("9025", "AMT NOT ALLOWED")
    return cents


def _return_urls(fields: dict[str, str]) -> tuple[str, str]:
    given = [fields.get("SUCCESSURL", ""), fields.get("FAILUREURL", "")]
    config = current_app.config
    if any(given) and not store().setting("interpay:dynamic_url", True):
        raise Refusal("9001", "CANNOT OVERRIDE URLS")
    success = given[0] or config.get("SANDBOX_INTERPAY_SUCCESSURL", "")
    failure = given[1] or config.get("SANDBOX_INTERPAY_FAILUREURL", "") or success
    for url in (success, failure):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise Refusal("9001", "WEB REDIRECT INPUT ERROR")
    return success, failure


def _new_secureid() -> str:
    while True:
        secureid = "".join(secrets.choice(SECUREID_ALPHABET) for _ in range(20))
        if store().get("interpay_session", secureid) is None:
            return secureid


def _new_refnum(termid: str) -> str:
    while True:
        refnum = str(secrets.randbelow(9 * 10**15) + 10**15)
        if store().get("interpay_refnum", f"{termid}:{refnum}") is None:
            return refnum


def _new_session(fields, server, cents, refnum, success_url, failure_url, secureid) -> dict:
    return {
        "secureid": secureid,
        "termid": fields["TERMID"],
        "requestid": fields["REQUESTID"],
        "refnum": refnum,
        "amount": cents,
        "custemail": fields["CUSTEMAIL"],
        "custname": fields.get("CUSTNAME", ""),
        "desc": fields.get("DESC", ""),
        "lang": fields.get("LANG", "E"),
        "successurl": success_url,
        "failureurl": failure_url,
        "server": server,
        "created": store().now(),
        "state": "open",  # open → approved → captured | reversed; or a failed state
        "polls": 0,
        "code": "",
        "text": "",
        "status": "",
        "card": {},
        "returned_at": None,
        "acked": "N",
        "error_answers": 0,
    }


# GetResult and Ack --------------------------------------------------------------------------
def get_result(fields: dict[str, str], server: str) -> dict[str, str]:
    secureid = fields.get("SECUREID", "")
    _session_of(fields["TERMID"], secureid)
    want_ack = fields.get("ACK", "N") == "Y"
    limits = _limits()
    _, reply = store().update(
        "interpay_session", secureid, lambda doc: _result_of(doc, want_ack, limits)
    )
    if reply is None:
        raise Refusal("9006", "SESSION INVALID OR EXPIRED")
    return reply


def _result_of(doc: dict, want_ack: bool, limits: dict) -> dict[str, str]:
    _expire(doc, limits)
    state = doc["state"]
    if state == "open":
        # An early GetResult is answered 9015; a second one cancels the session (§1.5).
        doc["polls"] += 1
        if doc["polls"] == 1:
            return _error("9015", "NO RESULT - DO NOT POLL")
        _finish(doc, "poll_cancelled", "9015", "CANCELLED SEQ", "9015")
        return _error("9015", "CANCELLED SEQ")
    if state == "error" and doc["error_answers"] > 0:
        doc["error_answers"] -= 1
        return _error("9100", "GATEWAY SYSTEM ERROR")
    if state == "error":
        _finish(doc, "not_completed", "9007", "NOT COMPLETED", doc["status"])
    if state == "approved" and want_ack:
        _capture(doc)
    return _full_result(doc)


def _full_result(doc: dict) -> dict[str, str]:
    reply = {
        "TEXT": doc["text"],
        "CODE": doc["code"],
        "SECUREID": doc["secureid"],
        "AMT": f"{doc['amount'] // 100}.{doc['amount'] % 100:02d}",
        "REQUESTID": doc["requestid"],
        "REFNUM": doc["refnum"],
        "ACK": doc["acked"],
    }
    card = doc["card"]
    if card:
        reply.update(
            CARDTYPE=card["type"], CARDMASK=card["mask"], CARDEXP=card["exp"], CARDHASH=card["hash"]
        )
    if doc["state"] in ("approved", "captured", "reversed"):
        reply.update(AUTH=card["auth"], TOKEN=card["token"])
    return reply


def ack(fields: dict[str, str], server: str) -> dict[str, str]:
    termid = fields["TERMID"]
    if fields.get("SECUREID"):
        secureid = fields["SECUREID"]
        _session_of(termid, secureid)
    else:
        refnum = fields.get("REFNUM", "")
        if not refnum:
            raise Refusal("9021", "MISSING REFNUM")
        known = store().get("interpay_refnum", f"{termid}:{refnum}")
        if known is None:
            raise Refusal("9013", "INVALID REFNUM")
        secureid = known["secureid"]
    flag = fields.get("ACK", "")
    if flag not in ("Y", "N"):
        raise Refusal("9001", "WEB REDIRECT INPUT ERROR")
    limits = _limits()
    _, reply = store().update(
        "interpay_session", secureid, lambda doc: _acknowledged(doc, flag, limits)
    )
    if reply is None:
        raise Refusal("9006", "SESSION INVALID OR EXPIRED")
    return reply


def _acknowledged(doc: dict, flag: str, limits: dict) -> dict[str, str]:
    _expire(doc, limits)
    state = doc["state"]
    if state == "approved":
        if flag == "Y":
            _capture(doc)
        else:
            _reverse(doc)
    state = doc["state"]
    if state == "captured":
        # A capture cannot be undone by Ack; a repeated Ack gets the same answer.
        return _error("0000", "CAPTURED")
    if state == "reversed":
        return _error("9008", "REVERSED")
    if state == "open":
        return _error("9015", "NO RESULT - DO NOT POLL")  # out of sequence: page not finished
    if state == "declined":
        return _error("9007", "NOT APPROVED")
    return _error("9007", "NOT COMPLETED")


def _session_of(termid: str, secureid: str) -> dict:
    doc = store().get("interpay_session", secureid) if SECUREID.fullmatch(secureid) else None
    if doc is None or doc["termid"] != termid:
        raise Refusal("9006", "SESSION INVALID OR EXPIRED")
    return doc


# The session's clock ------------------------------------------------------------------------
def _limits() -> dict:
    return {
        "now": store().now(),
        "page_timeout": float(store().setting("interpay:page_timeout", 900)),
        "ack_window": float(current_app.config["SANDBOX_INTERPAY_ACK_WINDOW"]),
    }


def _expire(doc: dict, limits: dict) -> None:
    """Apply what time has done: a page left open times out; an approval not acknowledged
    within the Ack window after the success redirect is reversed (§1.5)."""
    now = limits["now"]
    if doc["state"] == "open" and now - doc["created"] > limits["page_timeout"]:
        _finish(doc, "timed_out", "9004", "CUSTOMER TIMED OUT", STATUS_TIMED_OUT)
    elif doc["state"] == "approved" and now - doc["returned_at"] > limits["ack_window"]:
        _reverse(doc)


def _capture(doc: dict) -> None:
    doc.update(state="captured", acked="Y")


def _reverse(doc: dict) -> None:
    doc.update(state="reversed", code="9008", text="REVERSED", acked="N")


def _finish(doc: dict, state: str, code: str, text: str, status: str) -> None:
    doc.update(state=state, code=code, text=text, status=status)


def sweep(app) -> None:
    """After the clock moves: time out open pages and reverse unacknowledged approvals."""
    with app.app_context():
        limits = _limits()
        for doc in store().all("interpay_session"):
            if doc["state"] in ("open", "approved"):
                store().update("interpay_session", doc["secureid"], lambda d: _expire(d, limits))


@bp.record_once
def _register_sweep(state) -> None:
    state.app.extensions.setdefault("sandbox_sweeps", []).append(sweep)


# The hosted payment page --------------------------------------------------------------------
@bp.route("/api/HOSTPYMT/pay/", methods=("GET", "POST"))
@faultable("interpay", "pay")
def pay():
    """The card form. Pay or Cancel sends the browser back to the merchant with ``Status``.

    :raise 404: no session has this SecureID.
    """
    secureid = request.args.get("SecureID", "")
    doc = store().get("interpay_session", secureid) if SECUREID.fullmatch(secureid) else None
    if doc is None:
        abort(404)
    limits = _limits()
    doc, _ = store().update("interpay_session", secureid, lambda d: _expire(d, limits))
    if doc["state"] == "timed_out" and not doc.get("returned_at"):
        return _send_back(secureid)
    if doc["state"] != "open":
        return render_template("sandbox/interpay_done.html", doc=doc, back=_return_url(doc))
    if request.method == "GET":
        return _form(doc)
    if request.form.get("action") == "cancel":
        _end(secureid, "cancelled", "9005", "CUSTOMER CANCELLED", STATUS_CANCELLED)
        return _send_back(secureid)
    errors = _card_errors(request.form)
    if errors:
        return _form(doc, errors, status=422)
    _charge(secureid, request.form)
    return _send_back(secureid)


def _form(doc: dict, errors: list[str] | None = None, status: int = 200):
    amount = f"{doc['amount'] // 100}.{doc['amount'] % 100:02d}"
    currency = current_app.config.get("SANDBOX_INTERPAY_CURRENCY", "CAD")
    page = render_template(
        "sandbox/interpay_pay.html",
        doc=doc,
        # LANG is E or F (§1.3): the page is English or French.
        lang="fr" if doc.get("lang") == "F" else "en",
        amount=amount,
        currency=currency,
        errors=errors or [],
        form=request.form,
        cards=TEST_CARDS,
    )
    return page, status


def _card_errors(form) -> list[str]:
    errors = []
    if not cards.luhn_ok(form.get("card_number", "")):
        errors.append("The card number is not valid.")
    match = re.fullmatch(r"\s*([0-9]{2})\s*/\s*([0-9]{2})\s*", form.get("expiry", ""))
    month, year = (int(match[1]), 2000 + int(match[2])) if match else (0, 0)
    today = time.gmtime(store().now())
    if not 1 <= month <= 12 or (year, month) < (today.tm_year, today.tm_mon):
        errors.append("The expiry date must be a month to come, as MM/YY.")
    if not re.fullmatch(r"[0-9]{3,4}", form.get("cvv", "").strip()):
        errors.append("The security code is three or four digits.")
    return errors


def _charge(secureid: str, form) -> None:
    pan = cards.digits(form["card_number"])
    card = {
        "type": CARD_TYPES.get(cards.brand(pan), "D"),
        "mask": "****" + pan[-4:],
        "exp": form["expiry"].replace(" ", ""),
        "hash": hashlib.sha256(pan.encode()).hexdigest()[:32],
        "auth": "T" + str(secrets.randbelow(90000) + 10000),
        "token": pan[:4] + "".join(secrets.choice(string.ascii_uppercase) for _ in range(8)),
    }
    if pan in DECLINING_CARDS:
        code, text = DECLINING_CARDS[pan]
        _end(secureid, "declined", code, text, STATUS_DECLINED, card=card)
    elif pan == SYSTEM_ERROR_CARD:
        _end(
            secureid,
            "error",
            "9100",
            "GATEWAY SYSTEM ERROR",
            "9100",
            card=card,
            error_answers=SYSTEM_ERROR_ANSWERS,
        )
    else:
        captured = not store().setting("interpay:ack_required", True)
        # Without Ack on the terminal the approval is final at once; with it, the Ack window
        # starts at the redirect to the success URL (§1.5).
        _end(
            secureid,
            "captured" if captured else "approved",
            "0000",
            "APPROVED",
            STATUS_APPROVED,
            card=card,
            acked="Y" if captured else "N",
        )


def _end(secureid: str, state: str, code: str, text: str, status: str, **values) -> None:
    now = store().now()

    def finish(doc):
        if doc["state"] != "open":
            return  # a second tab or a double submit: the first result stands
        _finish(doc, state, code, text, status)
        doc.update(returned_at=now, **values)

    store().update("interpay_session", secureid, finish)


def _send_back(secureid: str):
    """303 to the merchant's return URL, once the session has its Status."""
    now = store().now()
    doc, _ = store().update(
        "interpay_session",
        secureid,
        lambda d: d.update(returned_at=d["returned_at"] or now),
    )
    doc = cast(dict, doc)  # the page found the session before sending the browser back
    with_id = True
    if doc["status"] != STATUS_APPROVED:
        taken = store().take_fault("interpay", "return")
        # A failed return may lack SecureID (§1.3): the merchant must cope without it.
        with_id = not (taken and taken[0] == "no_secureid")
    return redirect(_return_url(doc, with_id), code=303)


def _return_url(doc: dict, with_id: bool = True) -> str:
    """The merchant's URL with ``SecureID`` and ``Status`` appended (§1.3)."""
    failed = doc["status"] != STATUS_APPROVED
    url = doc["failureurl"] if failed else doc["successurl"]
    params = {"SecureID": doc["secureid"], "Status": doc["status"]}
    if not with_id:
        del params["SecureID"]
    return _with_query(url, params)


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))


# Wire encodings -----------------------------------------------------------------------------
def _read_message(server: str) -> Message:
    body = request.get_data(as_text=True)
    if request.is_json or body.lstrip().startswith("{"):
        return _read_json(body)
    text = body.strip() or _url_tail(server)
    message = _read_pairs(text)
    message.wants_json = message.wants_json or "application/json" in request.headers.get(
        "Accept", ""
    )
    return message


def _read_json(body: str) -> Message:
    try:
        data = json.loads(body)
    except ValueError:
        return Message(wants_json=True, problem="not JSON")
    if not isinstance(data, dict):
        return Message(wants_json=True, problem="not a JSON object")
    fields = {str(k).upper(): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
    return Message(fields=fields, wants_json=True)


def _url_tail(server: str) -> str:
    # The raw request line keeps the string exactly as sent: an %26 inside a value stays one.
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
    if not raw:
        raw = quote(request.environ.get("PATH_INFO", ""))
        raw += "?" + request.query_string.decode() if request.query_string else ""
    raw = re.sub(r"^[a-z]+://[^/]+", "", raw)
    marker = f"/{server}/"
    at = raw.find(marker, len(request.script_root))
    return raw[at + len(marker) :].lstrip("?") if at >= 0 else ""


def _read_pairs(text: str) -> Message:
    message = Message()
    names = []
    for part in filter(None, text.split("&")):
        if part == "JSON":
            message.wants_json = True  # the token a client appends to ask for a JSON reply
            continue
        name, equals, value = part.partition("=")
        if not equals or not re.fullmatch(r"[A-Za-z0-9_]+", name):
            message.problem = "not a NAME=value string"
            continue
        names.append(name.upper())
        message.fields[name.upper()] = unquote_plus(value)
    if not names:
        message.problem = "empty message"
    elif names[0] != "TERMID":
        message.problem = "TERMID must be the first field"
    return message


def _error(code: str, text: str) -> dict[str, str]:
    return {"CODE": code, "TEXT": text}


def _reply(fields: dict[str, str], as_json: bool, started: float) -> Response:
    now = time.gmtime(store().now())
    fields = {
        **fields,
        "DATE": time.strftime("%Y-%m-%d", now),
        "TIME": time.strftime("%H:%M:%S", now),
        "DUR": f"{time.monotonic() - started:.3f}",
    }
    if as_json:
        return Response(json.dumps(fields), mimetype="application/json")
    # Values go out as they are, like the documented replies (a URL keeps its "?" and "=").
    text = "&".join(f"{name}={value}" for name, value in fields.items())
    return Response(text, mimetype="text/plain")


def _external_url(endpoint: str, **values) -> str:
    # Absolute, and right when the sandbox is mounted under a path prefix (/sandbox).
    return url_for(endpoint, _external=True, **values)
