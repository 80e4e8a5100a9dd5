"""The sandbox's BPC/RBS gateway, driven over real HTTP with literal protocol values."""

from __future__ import annotations

import json
import re
import threading
import uuid
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from flask import Flask, request
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from sandbox import create_app as create_sandbox
from sandbox.rbs import checksum as sandbox_checksum
from tests.conftest import CONTROL_TOKEN, SandboxControl
from tests.journeys import wait_for
from tests.oracles import rbs_checksum
from tests.servers import serving

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "rbs"
CREDENTIALS = {"userName": "sandbox-merchant", "password": "sandbox-password"}
CALLBACK_KEY = "sandbox-callback-key"
RETURN_URL = "https://shop.example/pay/rbs/return?token=abc"
FAIL_URL = "https://shop.example/pay/rbs/fail"
CARD = {"expiry": "12/34", "cvc": "123", "cardholder": "Test Cardholder"}


# Helpers ----------------------------------------------------------------------------------
def call(sandbox, method: str, http: str = "POST", **fields) -> dict:
    url = f"{sandbox.url}/rbs/payment/rest/{method}.do"
    body = {**CREDENTIALS, **fields}
    if http == "GET":
        response = requests.get(url, params=body, timeout=10)
    else:
        response = requests.post(url, data=body, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


def register(sandbox, number: str = "10001_1", pre_auth: bool = False, **fields) -> dict:
    values = {
        "orderNumber": number,
        "amount": "2000",
        "currency": "978",
        "returnUrl": RETURN_URL,
        "failUrl": FAIL_URL,
        "description": "Order 10001",
        "language": "en",
        **fields,
    }
    values = {k: v for k, v in values.items() if v is not None}
    reply = call(sandbox, "registerPreAuth" if pre_auth else "register", **values)
    assert "orderId" in reply, reply
    return reply


def status(sandbox, order_id: str, **fields) -> dict:
    return call(sandbox, "getOrderStatusExtended", orderId=order_id, **fields)


def pay(form_url: str, pan: str = "4111111111111111", **fields) -> requests.Response:
    data = {"pan": pan, **CARD, "action": "pay", **fields}
    return requests.post(form_url, data=data, allow_redirects=False, timeout=10)


def query_of(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


class Recorder:
    """A merchant endpoint on loopback that records every callback it receives."""

    def __init__(self):
        self.calls: list[dict] = []
        self.answers: list[int] = []
        self.lock = threading.Lock()
        self.app = Flask("callback_recorder")
        self.app.add_url_rule("/callback", view_func=self.receive, methods=["GET", "POST"])

    def receive(self):
        with self.lock:
            values = request.form if request.method == "POST" else request.args
            self.calls.append({"method": request.method, "params": values.to_dict()})
            code = self.answers.pop(0) if self.answers else 200
        return "OK", code

    def operations(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(c["params"].get("operation"), c["params"].get("status")) for c in self.calls]

    def wait(self, count: int = 1) -> list[dict]:
        assert wait_for(lambda: len(self.calls) >= count, seconds=10.0)
        with self.lock:
            return list(self.calls)


@pytest.fixture
def recorder():
    rec = Recorder()
    with serving(rec.app) as server:
        rec.url = f"{server.url}/callback"
        yield rec


class PageParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.inputs: list[dict] = []
        self.labels: list[str] = []
        self.buttons: list[dict] = []
        self.forms: list[dict] = []
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "input":
            self.inputs.append(attributes)
        elif tag == "label":
            self.labels.append(attributes.get("for", ""))
        elif tag == "button":
            self.buttons.append(attributes)
        elif tag == "form":
            self.forms.append(attributes)


def parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    return parser


# The checksum -----------------------------------------------------------------------------
def test_checksum_matches_the_worked_examples():
    for example in json.loads((FIXTURES / "checksum_examples.json").read_text()):
        assert sandbox_checksum(example["params"], example["key"]) == example["checksum"]
        assert rbs_checksum(example["params"], example["key"]) == example["checksum"]
        with_extras = {**example["params"], "checksum": "X", "sign_alias": "k1"}
        assert sandbox_checksum(with_extras, example["key"]) == example["checksum"]


# register.do ------------------------------------------------------------------------------
def test_register_answers_order_id_and_form_url(sandbox):
    reply = register(sandbox)
    order_id = reply["orderId"]
    assert str(uuid.UUID(order_id)) == order_id
    assert set(reply) == {"orderId", "formUrl"}
    assert reply["formUrl"] == (
        f"{sandbox.url}/rbs/payment/merchants/sandbox-merchant/payment_en.html?mdOrder={order_id}"
    )
    info = status(sandbox, order_id)
    assert info["errorCode"] == "0"
    assert info["orderStatus"] == 0
    assert info["actionCode"] == -100
    assert info["amount"] == 2000
    assert info["currency"] == "978"
    assert info["orderNumber"] == "10001_1"
    assert info["orderDescription"] == "Order 10001"
    assert info["attributes"] == [{"name": "mdOrder", "value": order_id}]
    assert info["paymentAmountInfo"]["paymentState"] == "CREATED"
    assert "cardAuthInfo" not in info
    assert abs(info["date"] / 1000 - sandbox.state()["now"]) < 60


def test_register_accepts_get_and_parses_json_strings(sandbox):
    reply = call(
        sandbox,
        "register",
        http="GET",
        orderNumber="10002_1",
        amount="0",
        returnUrl=RETURN_URL,
        jsonParams=json.dumps({"email": "a@example.com", "phone": "123"}),
        orderBundle=json.dumps({"cartItems": {"items": []}}),
        language="de",
    )
    assert reply["formUrl"].endswith(f"/payment_de.html?mdOrder={reply['orderId']}")
    info = status(sandbox, reply["orderId"])
    assert info["currency"] == "978"  # the merchant's currency when none is given
    assert {"name": "email", "value": "a@example.com"} in info["merchantOrderParams"]


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"password": "wrong"}, "5"),
        ({"userName": "someone-else"}, "5"),
        ({"orderNumber": None}, "4"),
        ({"amount": None}, "4"),
        ({"amount": "10.45"}, "5"),
        ({"amount": "-1"}, "5"),
        ({"amount": "ten"}, "5"),
        ({"currency": "EUR"}, "3"),
        ({"currency": "810"}, "3"),
        ({"returnUrl": None}, "4"),
        ({"returnUrl": "/pay/rbs/return"}, "4"),
        ({"returnUrl": "shop.example/return"}, "4"),
        ({"failUrl": "/pay/rbs/fail"}, "4"),
        ({"dynamicCallbackUrl": "callback"}, "4"),
        ({"jsonParams": "{not json"}, "5"),
        ({"jsonParams": "[1, 2]"}, "5"),
        ({"orderBundle": "{"}, "5"),
        ({"sessionTimeoutSecs": "soon"}, "5"),
        ({"orderNumber": "x" * 37}, "5"),
    ],
)
def test_register_refusals(sandbox, fields, code):
    values = {
        **CREDENTIALS,
        "orderNumber": "10003_1",
        "amount": "2000",
        "currency": "978",
        "returnUrl": RETURN_URL,
        **fields,
    }
    values = {k: v for k, v in values.items() if v is not None}
    response = requests.post(f"{sandbox.url}/rbs/payment/rest/register.do", data=values, timeout=10)
    assert response.status_code == 200  # business errors are not HTTP errors
    reply = response.json()
    assert reply["errorCode"] == code
    assert reply["errorMessage"]
    assert "orderId" not in reply and "formUrl" not in reply
    if code == "5" and "password" in fields:
        assert reply["errorMessage"] == "Access denied"


def test_order_number_is_unique_per_merchant(sandbox):
    register(sandbox, "10004_1")
    reply = call(sandbox, "register", orderNumber="10004_1", amount="2000", returnUrl=RETURN_URL)
    assert reply["errorCode"] == "1"
    assert "orderId" not in reply
    reply = call(
        sandbox, "registerPreAuth", orderNumber="10004_1", amount="2000", returnUrl=RETURN_URL
    )
    assert reply["errorCode"] == "1"


def test_concurrent_registrations_of_one_number_make_one_order(sandbox):
    replies = []

    def attempt():
        replies.append(
            call(sandbox, "register", orderNumber="10005_1", amount="2000", returnUrl=RETURN_URL)
        )

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum("orderId" in r for r in replies) == 1
    assert sum(r.get("errorCode") == "1" for r in replies) == 7
    assert len(sandbox.state()["rbs_order"]) == 1


def test_form_url_follows_a_path_prefix():
    inner = create_sandbox({"SANDBOX_DB": ":memory:"})
    outer = Flask("host")
    outer.wsgi_app = DispatcherMiddleware(outer.wsgi_app, {"/sandbox": inner})
    with serving(outer) as server:
        reply = requests.post(
            f"{server.url}/sandbox/rbs/payment/rest/register.do",
            data={**CREDENTIALS, "orderNumber": "1", "amount": "100", "returnUrl": RETURN_URL},
            timeout=10,
        ).json()
        assert reply["formUrl"].startswith(f"{server.url}/sandbox/rbs/payment/merchants/")
        page = requests.get(reply["formUrl"], timeout=10)
        assert page.status_code == 200
        assert 'action="/sandbox/rbs/payment/merchants/' in page.text


def test_token_and_static_callback_url(recorder):
    app = create_sandbox(
        {
            "SANDBOX_DB": ":memory:",
            "SANDBOX_RBS_TOKEN": "api-token-123",
            "SANDBOX_RBS_CALLBACK_URL": recorder.url,
        }
    )
    with serving(app) as server:
        url = f"{server.url}/rbs/payment/rest/register.do"
        fields = {"orderNumber": "1", "amount": "100", "returnUrl": RETURN_URL}
        reply = requests.post(url, data={"token": "api-token-123", **fields}, timeout=10).json()
        assert "formUrl" in reply
        refused = requests.post(url, data={"token": "nope", **fields}, timeout=10).json()
        assert refused == {"errorCode": "5", "errorMessage": "Access denied"}
        pay(reply["formUrl"])
        (received,) = recorder.wait(1)
    assert received["params"]["operation"] == "deposited"
    assert received["params"]["mdOrder"] == reply["orderId"]


# The hosted payment page --------------------------------------------------------------------
def test_payment_page_has_everything_and_no_javascript(sandbox):
    reply = register(sandbox, description="Blue mug x2")
    page = requests.get(reply["formUrl"], timeout=10)
    assert page.status_code == 200
    html = page.text
    assert "<script" not in html.lower()
    assert not re.search(r"\son[a-z]+\s*=", html, re.IGNORECASE)
    assert "20.00 EUR" in html
    assert "sandbox-merchant" in html
    assert "Blue mug x2" in html
    assert "10001_1" in html
    for pan in (
        "4111111111111111",
        "5555555555555599",
        "4000000000000002",
        "4000000000000036",
        "4000000000000044",
        "4000000000000051",
    ):
        assert pan in html
    parsed = parse(html)
    visible = [i for i in parsed.inputs if i.get("type") not in ("hidden", "submit")]
    assert {i["name"] for i in visible} == {"pan", "expiry", "cvc", "cardholder"}
    for field in visible:
        assert field.get("id") in parsed.labels, field
    assert {b.get("value") for b in parsed.buttons} == {"pay", "cancel"}
    assert parsed.forms[0]["method"] == "post"


def test_approved_payment_redirects_to_return_url_and_is_deposited(sandbox):
    reply = register(sandbox)
    order_id = reply["orderId"]
    response = pay(reply["formUrl"])
    assert response.status_code == 303
    assert response.headers["Location"] == f"{RETURN_URL}&orderId={order_id}&lang=en"
    info = status(sandbox, order_id)
    assert info["orderStatus"] == 2
    assert info["actionCode"] == 0
    assert info["paymentAmountInfo"] == {
        "paymentState": "DEPOSITED",
        "approvedAmount": 2000,
        "depositedAmount": 2000,
        "refundedAmount": 0,
        "totalAmount": 2000,
    }
    card = info["cardAuthInfo"]
    assert card["maskedPan"] == "411111**1111"
    assert card["expiration"] == "203412"
    assert card["cardholderName"] == "TEST CARDHOLDER"
    assert card["paymentSystem"] == "VISA"
    assert re.fullmatch(r"\d{6}", card["approvalCode"])
    assert "4111111111111111" not in json.dumps(sandbox.state())  # only the masked PAN is kept


def test_return_url_without_query_gets_a_question_mark(sandbox):
    reply = register(sandbox, returnUrl="https://shop.example/return")
    response = pay(reply["formUrl"])
    location = response.headers["Location"]
    assert location == f"https://shop.example/return?orderId={reply['orderId']}&lang=en"


def test_paying_twice_changes_nothing(sandbox):
    reply = register(sandbox)
    first = pay(reply["formUrl"])
    again = pay(reply["formUrl"], pan="4000000000000002")
    assert again.status_code == 303
    assert again.headers["Location"] == first.headers["Location"]
    assert status(sandbox, reply["orderId"])["orderStatus"] == 2
    page = requests.get(reply["formUrl"], timeout=10)
    assert "already processed" in page.text


def test_concurrent_payments_decide_once(sandbox, recorder):
    reply = register(sandbox, dynamicCallbackUrl=recorder.url)
    results = []

    def attempt(pan):
        results.append(pay(reply["formUrl"], pan=pan).headers["Location"])

    pans = ["4111111111111111", "4000000000000002"] * 4
    threads = [threading.Thread(target=attempt, args=(pan,)) for pan in pans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1  # every browser is sent where the one decision went
    recorder.wait(1)
    # The decision is reported once: wait until its delivery is finished, then count.
    assert wait_for(
        lambda: all(j["state"] == "delivered" for j in sandbox.state()["delivery"]), seconds=10.0
    )
    assert len(recorder.calls) == 1
    assert len(sandbox.state()["delivery"]) == 1


def test_invalid_card_number_shows_the_form_again(sandbox):
    reply = register(sandbox)
    response = pay(reply["formUrl"], pan="4111111111111112")
    assert response.status_code == 200
    assert 'role="alert"' in response.text
    assert "not valid" in response.text
    assert 'name="pan"' in response.text
    assert status(sandbox, reply["orderId"])["orderStatus"] == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"expiry": "13/30"}, "MM/YY"), ({"expiry": "01/20"}, "expired"), ({"cvc": "1"}, "CVC")],
)
def test_invalid_card_details_show_the_form_again(sandbox, fields, message):
    reply = register(sandbox)
    response = pay(reply["formUrl"], **fields)
    assert response.status_code == 200
    assert 'role="alert"' in response.text and message in response.text
    assert status(sandbox, reply["orderId"])["orderStatus"] == 0


def test_declined_card_goes_to_fail_url(sandbox):
    reply = register(sandbox)
    response = pay(reply["formUrl"], pan="4000000000000002")
    assert response.status_code == 303
    assert response.headers["Location"] == f"{FAIL_URL}?orderId={reply['orderId']}&lang=en"
    info = status(sandbox, reply["orderId"])
    assert info["orderStatus"] == 6
    assert info["actionCode"] == 2001
    assert info["actionCodeDescription"] == "Declined by issuer"
    assert info["paymentAmountInfo"]["paymentState"] == "DECLINED"
    assert info["paymentAmountInfo"]["depositedAmount"] == 0


def test_failure_without_fail_url_goes_to_return_url(sandbox):
    reply = register(sandbox, failUrl=None)
    response = pay(reply["formUrl"], pan="4000000000000002")
    assert response.headers["Location"] == f"{RETURN_URL}&orderId={reply['orderId']}&lang=en"


def test_cancel_button_and_cancel_card(sandbox):
    by_button = register(sandbox, "10010_1")
    response = requests.post(
        by_button["formUrl"], data={"action": "cancel"}, allow_redirects=False, timeout=10
    )
    assert response.status_code == 303
    assert response.headers["Location"].startswith(FAIL_URL + "?orderId=")
    info = status(sandbox, by_button["orderId"])
    assert (info["orderStatus"], info["actionCode"]) == (6, 10)

    by_card = register(sandbox, "10011_1")
    response = pay(by_card["formUrl"], pan="4000000000000044")
    assert response.headers["Location"].startswith(FAIL_URL + "?orderId=")
    info = status(sandbox, by_card["orderId"])
    assert (info["orderStatus"], info["actionCode"]) == (6, 10)


def test_3ds_card_shows_status_5_then_approves(sandbox):
    reply = register(sandbox)
    response = pay(reply["formUrl"], pan="5555555555555599")
    assert response.status_code == 303
    acs_url = urljoin(reply["formUrl"], response.headers["Location"])
    assert status(sandbox, reply["orderId"])["orderStatus"] == 5
    page = requests.get(acs_url, timeout=10)
    assert "Complete authentication" in page.text
    assert "<script" not in page.text.lower()
    # Going back to the payment page while authenticating leads to the ACS page again.
    back = requests.get(reply["formUrl"], allow_redirects=False, timeout=10)
    assert urljoin(reply["formUrl"], back.headers["Location"]) == acs_url
    done = requests.post(acs_url, allow_redirects=False, timeout=10)
    assert done.status_code == 303
    assert done.headers["Location"] == f"{RETURN_URL}&orderId={reply['orderId']}&lang=en"
    info = status(sandbox, reply["orderId"])
    assert info["orderStatus"] == 2
    assert info["cardAuthInfo"]["maskedPan"] == "555555**5599"
    assert info["cardAuthInfo"]["paymentSystem"] == "MASTERCARD"
    again = requests.post(acs_url, allow_redirects=False, timeout=10)
    assert again.headers["Location"] == done.headers["Location"]


def test_hold_only_card_holds_a_one_phase_order(sandbox):
    reply = register(sandbox)
    response = pay(reply["formUrl"], pan="4000000000000036")
    assert response.headers["Location"].startswith(RETURN_URL)
    info = status(sandbox, reply["orderId"])
    assert info["orderStatus"] == 1
    assert info["paymentAmountInfo"]["approvedAmount"] == 2000
    assert info["paymentAmountInfo"]["depositedAmount"] == 0
    assert call(sandbox, "deposit", orderId=reply["orderId"], amount="0")["errorCode"] == "0"
    assert status(sandbox, reply["orderId"])["orderStatus"] == 2


# Back office: deposit, reverse, refund ------------------------------------------------------
def test_two_phase_hold_deposit_and_refund(sandbox):
    reply = register(sandbox, pre_auth=True)
    order_id = reply["orderId"]
    assert pay(reply["formUrl"]).headers["Location"].startswith(RETURN_URL)
    info = status(sandbox, order_id)
    assert info["orderStatus"] == 1
    assert info["paymentAmountInfo"]["paymentState"] == "APPROVED"
    assert info["paymentAmountInfo"]["approvedAmount"] == 2000
    assert info["paymentAmountInfo"]["depositedAmount"] == 0

    assert call(sandbox, "refund", orderId=order_id, amount="100")["errorCode"] == "7"
    assert call(sandbox, "deposit", orderId=order_id, amount="3000")["errorCode"] == "5"
    assert call(sandbox, "deposit", orderId=order_id, amount="10.45")["errorCode"] == "5"
    assert call(sandbox, "deposit", orderId=order_id)["errorCode"] == "4"
    assert call(sandbox, "deposit", orderId=order_id, amount="1500") == {
        "errorCode": "0",
        "errorMessage": "Success",
    }
    info = status(sandbox, order_id)
    assert info["orderStatus"] == 2
    assert info["paymentAmountInfo"]["approvedAmount"] == 2000
    assert info["paymentAmountInfo"]["depositedAmount"] == 1500
    second = call(sandbox, "deposit", orderId=order_id, amount="500")
    assert second["errorCode"] == "7" and "status is 2" in second["errorMessage"]

    first = call(
        sandbox,
        "refund",
        orderId=order_id,
        amount="500",
        externalRefundId="refund-1",
        expectedDepositedAmount="1500",
    )
    assert first == {"errorCode": "0", "errorMessage": "Success"}
    info = status(sandbox, order_id)
    assert info["orderStatus"] == 4
    assert info["paymentAmountInfo"]["refundedAmount"] == 500
    assert info["paymentAmountInfo"]["paymentState"] == "REFUNDED"

    # The same externalRefundId is the same refund: same answer, no second refund.
    repeat = call(sandbox, "refund", orderId=order_id, amount="500", externalRefundId="refund-1")
    assert repeat == first
    assert status(sandbox, order_id)["paymentAmountInfo"]["refundedAmount"] == 500

    over = call(sandbox, "refund", orderId=order_id, amount="1001")
    assert over["errorCode"] == "5" and "exceeds" in over["errorMessage"]
    wrong_guard = call(
        sandbox, "refund", orderId=order_id, amount="1", expectedDepositedAmount="999"
    )
    assert wrong_guard["errorCode"] == "7"
    assert call(sandbox, "refund", orderId=order_id, amount="0")["errorCode"] == "0"  # the rest
    assert status(sandbox, order_id)["paymentAmountInfo"]["refundedAmount"] == 1500
    assert call(sandbox, "refund", orderId=order_id, amount="1")["errorCode"] == "7"


def test_deposit_zero_captures_the_full_amount(sandbox):
    reply = register(sandbox, pre_auth=True)
    pay(reply["formUrl"])
    assert call(sandbox, "deposit", orderId=reply["orderId"], amount="0")["errorCode"] == "0"
    amounts = status(sandbox, reply["orderId"])["paymentAmountInfo"]
    assert amounts["depositedAmount"] == 2000


def test_reverse_only_once(sandbox):
    held = register(sandbox, "10020_1", pre_auth=True)
    pay(held["formUrl"])
    assert call(sandbox, "reverse", orderId=held["orderId"])["errorCode"] == "0"
    info = status(sandbox, held["orderId"])
    assert info["orderStatus"] == 3
    assert info["paymentAmountInfo"]["paymentState"] == "REVERSED"
    again = call(sandbox, "reverse", orderId=held["orderId"])
    assert again["errorCode"] == "7" and "already been reversed" in again["errorMessage"]
    assert call(sandbox, "deposit", orderId=held["orderId"], amount="0")["errorCode"] == "7"

    unpaid = register(sandbox, "10021_1")
    refused = call(sandbox, "reverse", orderId=unpaid["orderId"])
    assert refused["errorCode"] == "7" and "status is 0" in refused["errorMessage"]


def test_a_one_phase_payment_is_reversed_within_the_window(sandbox):
    paid = register(sandbox, "10022_1")
    pay(paid["formUrl"])
    assert status(sandbox, paid["orderId"])["orderStatus"] == 2
    sandbox.advance(23 * 3600)  # the same day, before the bank settles
    assert call(sandbox, "reverse", orderId=paid["orderId"]) == {
        "errorCode": "0",
        "errorMessage": "Success",
    }
    info = status(sandbox, paid["orderId"])
    assert info["orderStatus"] == 3
    assert "reversedDate" in info
    assert info["paymentAmountInfo"] == {
        "paymentState": "REVERSED",
        "approvedAmount": 2000,
        "depositedAmount": 0,
        "refundedAmount": 0,
        "totalAmount": 2000,
    }
    assert call(sandbox, "refund", orderId=paid["orderId"], amount="0")["errorCode"] == "7"
    again = call(sandbox, "reverse", orderId=paid["orderId"])
    assert again["errorCode"] == "7" and "already been reversed" in again["errorMessage"]


def test_after_the_window_or_a_refund_only_a_refund_gives_money_back(sandbox):
    late = register(sandbox, "10023_1")
    pay(late["formUrl"])
    refunded = register(sandbox, "10024_1")
    pay(refunded["formUrl"])
    assert call(sandbox, "refund", orderId=refunded["orderId"], amount="500")["errorCode"] == "0"
    refused = call(sandbox, "reverse", orderId=refunded["orderId"])
    assert refused["errorCode"] == "7" and "status is 4" in refused["errorMessage"]
    sandbox.advance(24 * 3600 + 1)
    refused = call(sandbox, "reverse", orderId=late["orderId"])
    assert set(refused) == {"errorCode", "errorMessage"}
    assert refused["errorCode"] == "7" and "refund it instead" in refused["errorMessage"]
    assert status(sandbox, late["orderId"])["orderStatus"] == 2
    assert call(sandbox, "refund", orderId=late["orderId"], amount="0")["errorCode"] == "0"
    assert status(sandbox, late["orderId"])["orderStatus"] == 4


def test_the_reverse_window_is_configurable():
    app = create_sandbox(
        {
            "SANDBOX_DB": ":memory:",
            "SANDBOX_CONTROL_TOKEN": CONTROL_TOKEN,
            "SANDBOX_RBS_REVERSE_WINDOW": "60",
        }
    )
    with serving(app) as server:
        control = SandboxControl(server.url)
        first, second = register(control, "1_1"), register(control, "2_1")
        pay(first["formUrl"])
        pay(second["formUrl"])
        control.advance(59)
        assert call(control, "reverse", orderId=first["orderId"])["errorCode"] == "0"
        control.advance(2)
        assert call(control, "reverse", orderId=second["orderId"])["errorCode"] == "7"


def test_unknown_orders_and_lookup_by_order_number(sandbox):
    reply = register(sandbox, "10030_1")
    by_number = call(sandbox, "getOrderStatusExtended", orderNumber="10030_1")
    assert by_number["attributes"] == [{"name": "mdOrder", "value": reply["orderId"]}]
    for fields in ({"orderId": str(uuid.uuid4())}, {"orderId": "10030_1"}, {"orderNumber": "x"}):
        missing = call(sandbox, "getOrderStatusExtended", **fields)
        assert missing["errorCode"] == "6"
        assert missing["errorMessage"] == "Order not found"
        assert "orderStatus" not in missing
    assert call(sandbox, "getOrderStatusExtended")["errorCode"] == "5"
    assert call(sandbox, "deposit", orderId=str(uuid.uuid4()), amount="0")["errorCode"] == "6"
    denied = call(sandbox, "getOrderStatusExtended", orderId=reply["orderId"], password="x")
    assert denied == {"errorCode": "5", "errorMessage": "Access denied"}


# Status replies: types and the legacy method --------------------------------------------------
def test_numbers_as_strings_and_numeric_error_code(sandbox):
    reply = register(sandbox)
    pay(reply["formUrl"])
    default = status(sandbox, reply["orderId"])
    assert default["errorCode"] == "0" and default["orderStatus"] == 2

    sandbox.settings(**{"rbs:numbers_as_strings": True})
    info = status(sandbox, reply["orderId"])
    assert info["errorCode"] == "0"
    assert info["orderStatus"] == "2"
    assert info["actionCode"] == "0"
    assert info["amount"] == "2000"
    assert isinstance(info["date"], str)
    assert set(info["paymentAmountInfo"].values()) == {"DEPOSITED", "2000", "0"}

    sandbox.settings(**{"rbs:numbers_as_strings": False, "rbs:numeric_error_code": True})
    info = status(sandbox, reply["orderId"])
    assert info["errorCode"] == 0 and info["orderStatus"] == 2


def test_legacy_get_order_status_capitalises_keys(sandbox):
    documented = json.loads((FIXTURES / "order_status_legacy_capitalised.json").read_text())
    reply = register(sandbox)
    pay(reply["formUrl"])
    legacy = call(sandbox, "getOrderStatus", orderId=reply["orderId"])
    assert set(legacy) == set(documented)
    assert legacy["ErrorCode"] == "0"
    assert legacy["OrderStatus"] == 2
    assert legacy["OrderNumber"] == "10001_1"
    assert legacy["Pan"] == "411111**1111"
    assert legacy["Amount"] == 2000
    assert "errorCode" not in legacy
    missing = call(sandbox, "getOrderStatus", orderId=str(uuid.uuid4()))
    assert missing["ErrorCode"] == "6" and "OrderStatus" not in missing


# Status query faults ---------------------------------------------------------------------------
def test_status_query_faults(sandbox):
    reply = register(sandbox)
    order_id = reply["orderId"]
    pay(reply["formUrl"])

    sandbox.arm("rbs", "getOrderStatusExtended", "tamper_amount", amount=1)
    assert status(sandbox, order_id)["amount"] == 1
    sandbox.arm("rbs", "getOrderStatusExtended", "tamper_currency", currency="840")
    assert status(sandbox, order_id)["currency"] == "840"
    sandbox.arm("rbs", "getOrderStatusExtended", "status", orderStatus=6)
    assert status(sandbox, order_id)["orderStatus"] == 6
    sandbox.arm("rbs", "getOrderStatusExtended", "error_code")
    failed = status(sandbox, order_id)
    assert failed == {"errorCode": "7", "errorMessage": "System error"}
    sandbox.arm("rbs", "getOrderStatusExtended", "http_503")
    response = requests.post(
        f"{sandbox.url}/rbs/payment/rest/getOrderStatusExtended.do",
        data={**CREDENTIALS, "orderId": order_id},
        timeout=10,
    )
    assert response.status_code == 503
    # Each fault was one-shot: the next answer is the true one.
    info = status(sandbox, order_id)
    assert (info["amount"], info["currency"], info["orderStatus"]) == (2000, "978", 2)


def test_transport_fault_on_register(sandbox):
    sandbox.arm("rbs", "register", "html")
    response = requests.post(
        f"{sandbox.url}/rbs/payment/rest/register.do",
        data={**CREDENTIALS, "orderNumber": "1", "amount": "1", "returnUrl": RETURN_URL},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "rbs_order" not in sandbox.state()


# Session lifetime --------------------------------------------------------------------------------
def test_abandoned_order_expires_when_the_clock_moves(sandbox, recorder):
    reply = register(sandbox, dynamicCallbackUrl=recorder.url)
    sandbox.advance(1199)
    assert status(sandbox, reply["orderId"])["orderStatus"] == 0
    sandbox.advance(2)
    (received,) = recorder.wait(1)
    params = received["params"]
    assert params["operation"] == "declinedByTimeout"
    assert params["mdOrder"] == reply["orderId"]
    assert params["checksum"] == rbs_checksum(params, CALLBACK_KEY)
    info = status(sandbox, reply["orderId"])
    assert (info["orderStatus"], info["actionCode"]) == (6, -2007)
    page = requests.get(reply["formUrl"], timeout=10)
    assert "expired" in page.text.lower()
    late = pay(reply["formUrl"])
    assert "expired" in late.text.lower()
    assert status(sandbox, reply["orderId"])["actionCode"] == -2007
    assert len(recorder.calls) == 1


def test_stalled_card_stays_unpaid_until_its_session_timeout(sandbox, recorder):
    reply = register(sandbox, dynamicCallbackUrl=recorder.url, sessionTimeoutSecs="60")
    response = pay(reply["formUrl"], pan="4000000000000051")
    assert response.status_code == 200
    assert "in progress" in response.text
    info = status(sandbox, reply["orderId"])
    assert info["orderStatus"] == 0
    assert info["cardAuthInfo"]["maskedPan"] == "400000**0051"
    assert pay(reply["formUrl"]).status_code == 200  # another card changes nothing
    assert status(sandbox, reply["orderId"])["orderStatus"] == 0
    sandbox.advance(61)
    (received,) = recorder.wait(1)
    assert (received["params"]["operation"], received["params"]["status"]) == (
        "declinedByTimeout",
        "0",
    )
    info = status(sandbox, reply["orderId"])
    assert (info["orderStatus"], info["actionCode"]) == (6, -2007)


# Callbacks ---------------------------------------------------------------------------------------
def test_callbacks_for_every_event_are_signed(sandbox, recorder):
    reply = register(sandbox, pre_auth=True, dynamicCallbackUrl=recorder.url)
    order_id = reply["orderId"]
    pay(reply["formUrl"])
    recorder.wait(1)
    call(sandbox, "deposit", orderId=order_id, amount="1500")
    recorder.wait(2)
    call(sandbox, "refund", orderId=order_id, amount="500")
    calls = recorder.wait(3)
    assert recorder.operations() == [("approved", "1"), ("deposited", "1"), ("refunded", "1")]
    for received in calls:
        params = received["params"]
        assert received["method"] == "POST"
        assert set(params) == {
            "mdOrder",
            "orderNumber",
            "operation",
            "status",
            "amount",
            "checksum",
        }
        assert params["mdOrder"] == order_id
        assert params["orderNumber"] == "10001_1"
        assert params["amount"] == "2000"
        assert params["checksum"] == rbs_checksum(params, CALLBACK_KEY)


def test_one_phase_reversal_and_decline_callbacks(sandbox, recorder):
    paid = register(sandbox, "10040_1", dynamicCallbackUrl=recorder.url)
    pay(paid["formUrl"])
    recorder.wait(1)
    held = register(sandbox, "10041_1", pre_auth=True, dynamicCallbackUrl=recorder.url)
    pay(held["formUrl"])
    recorder.wait(2)
    call(sandbox, "reverse", orderId=held["orderId"])
    recorder.wait(3)
    declined = register(sandbox, "10042_1", dynamicCallbackUrl=recorder.url)
    pay(declined["formUrl"], pan="4000000000000002")
    recorder.wait(4)
    declined_hold = register(sandbox, "10043_1", pre_auth=True, dynamicCallbackUrl=recorder.url)
    pay(declined_hold["formUrl"], pan="4000000000000002")
    recorder.wait(5)
    assert recorder.operations() == [
        ("deposited", "1"),
        ("approved", "1"),
        ("reversed", "1"),
        ("deposited", "0"),
        ("approved", "0"),
    ]


def test_callbacks_by_get(sandbox, recorder):
    sandbox.settings(**{"rbs:callback_method": "GET"})
    reply = register(sandbox, dynamicCallbackUrl=recorder.url)
    pay(reply["formUrl"])
    (received,) = recorder.wait(1)
    assert received["method"] == "GET"
    assert received["params"]["operation"] == "deposited"
    assert received["params"]["checksum"] == rbs_checksum(received["params"], CALLBACK_KEY)


def test_callback_is_retried_until_answered_200(sandbox, recorder):
    sandbox.settings(**{"rbs:callback_retry_delay": 0.05})
    recorder.answers = [500, 503, 200]
    reply = register(sandbox, dynamicCallbackUrl=recorder.url)
    pay(reply["formUrl"])
    recorder.wait(3)
    job = wait_for(
        lambda: [j for j in sandbox.state()["delivery"] if j["state"] == "delivered"], seconds=10.0
    )
    assert job
    assert [t["status"] for t in job[0]["tries"]] == [500, 503, 200]
    assert len({json.dumps(c["params"], sort_keys=True) for c in recorder.calls}) == 1


def test_held_callbacks_wait_for_the_control_api(sandbox, recorder):
    sandbox.settings(**{"delivery:rbs": "hold"})
    reply = register(sandbox, dynamicCallbackUrl=recorder.url)
    pay(reply["formUrl"])
    assert [j["state"] for j in sandbox.state()["delivery"]] == ["held"]
    assert len(sandbox.deliver(gateway="rbs")) == 1
    (received,) = recorder.wait(1)
    assert received["params"]["operation"] == "deposited"


def test_duplicate_callback_fault(sandbox, recorder):
    sandbox.arm("rbs", "callback", "duplicate", copies=3)
    reply = register(sandbox, dynamicCallbackUrl=recorder.url)
    pay(reply["formUrl"])
    calls = recorder.wait(3)
    assert len({json.dumps(c["params"], sort_keys=True) for c in calls}) == 1
    assert calls[0]["params"]["checksum"] == rbs_checksum(calls[0]["params"], CALLBACK_KEY)


@pytest.mark.parametrize("fault", ["bad_checksum", "no_checksum", "tamper_amount"])
def test_checksum_faults(sandbox, recorder, fault):
    sandbox.arm("rbs", "callback", fault, amount=1)
    reply = register(sandbox, dynamicCallbackUrl=recorder.url)
    pay(reply["formUrl"])
    params = recorder.wait(1)[0]["params"]
    if fault == "bad_checksum":
        assert re.fullmatch(r"[0-9A-F]{64}", params["checksum"])
        assert params["checksum"] != rbs_checksum(params, CALLBACK_KEY)
    elif fault == "no_checksum":
        assert "checksum" not in params
    else:
        assert params["amount"] == "1"
        assert params["checksum"] == rbs_checksum(params, CALLBACK_KEY)
    # The fault was for one callback only.
    call(sandbox, "refund", orderId=reply["orderId"], amount="0")
    params = recorder.wait(2)[1]["params"]
    assert params["amount"] == "2000"
    assert params["checksum"] == rbs_checksum(params, CALLBACK_KEY)


def test_dropped_and_delayed_callbacks(sandbox, recorder):
    sandbox.arm("rbs", "callback", "drop")
    reply = register(sandbox, pre_auth=True, dynamicCallbackUrl=recorder.url)
    pay(reply["formUrl"])
    sandbox.arm("rbs", "callback", "delay", seconds=0.2)
    call(sandbox, "deposit", orderId=reply["orderId"], amount="0")
    recorder.wait(1)
    # The approved callback was never sent; the deposited one came after its delay.
    assert recorder.operations() == [("deposited", "1")]
    (job,) = sandbox.state()["delivery"]
    assert job["delay"] == 0.2
    (order,) = sandbox.state()["rbs_order"]
    assert [(c["operation"], c["fault"]) for c in order["callbacks"]] == [
        ("approved", "drop"),
        ("deposited", "delay"),
    ]


def test_callback_on_demand_for_replays(sandbox, recorder):
    reply = register(sandbox, dynamicCallbackUrl=recorder.url)
    pay(reply["formUrl"])
    recorder.wait(1)
    response = requests.post(
        f"{sandbox.url}/rbs/__control/callback",
        json={"mdOrder": reply["orderId"], "operation": "deposited", "status": 0},
        headers={"X-Sandbox-Control": CONTROL_TOKEN},
        timeout=10,
    )
    assert response.status_code == 200
    params = recorder.wait(2)[1]["params"]
    assert (params["operation"], params["status"]) == ("deposited", "0")
    assert params["checksum"] == rbs_checksum(params, CALLBACK_KEY)
    assert status(sandbox, reply["orderId"])["orderStatus"] == 2  # a callback moves no money


def test_no_callback_without_a_target(sandbox):
    reply = register(sandbox)
    pay(reply["formUrl"])
    assert "delivery" not in sandbox.state()


@pytest.mark.parametrize(
    ("language", "lang", "pay", "cancel"),
    [
        ("en", "en", "Pay 20.00 EUR", "Cancel"),
        ("de", "de", "20.00 EUR bezahlen", "Abbrechen"),
        ("ru", "ru", "Оплатить 20.00 EUR", "Отмена"),
        ("xx", "en", "Pay 20.00 EUR", "Cancel"),  # not known: the default page, no error
    ],
)
def test_the_payment_page_is_in_the_registered_language(sandbox, language, lang, pay, cancel):
    reply = register(sandbox, language=language)
    page = requests.get(reply["formUrl"], timeout=10).text
    assert f'<html lang="{lang}">' in page
    assert f">{pay}</button>" in page and f">{cancel}</button>" in page
