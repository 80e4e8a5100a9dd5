"""The sandbox's AltaPay Merchant API, driven over real HTTP with a recording shop on loopback.

Protocol values are written out literally here: these tests check the sandbox against the
protocol, not against the shop's adapter.
"""

from __future__ import annotations

import re
import threading
from xml.etree.ElementTree import ParseError

import pytest
import requests
from defusedxml.ElementTree import fromstring
from flask import Flask, request

from tests.journeys import wait_for
from tests.oracles import altapay_checksum
from tests.servers import serving

API_USER = ("sandbox-api", "sandbox-password")
TERMINAL = "Storefront Sandbox Terminal"
SECRET = "sandbox-shared-secret"
CARD = {"cardno": "4111111111111111", "emonth": "12", "eyear": "39", "cvc": "123"}
RELAYED_PAGE = """<!doctype html>
<html><head><title>Thank you</title>
<script>document.cookie = "x";</script>
<SCRIPT src="https://cdn.example/tracker.js"></SCRIPT>
<style>p { color: green; }</style></head>
<body onload="steal()">
<h1 onclick='alert(1)'>Thank you for order 1001</h1>
<a href="javascript:alert(1)">pay again</a> <a href=" JaVaScRiPt:evil()">x</a>
<img src="https://shop.example/logo.png" onerror="alert(2)" alt="Shop">
<iframe src="https://ads.example/"></iframe>
<scr<script>ipt>alert(3)</script> <svg/onload=alert(4)> <!--<script>alert(5)</script>-->
<div style="background:url(javascript:alert(6))">styled</div>
<a href="jav&#x09;ascript:alert(7)">tab</a>
<p>Receipt &amp; details</p>
</body></html>"""


class RecordingShop:
    """A merchant's callback pages on loopback: records every call, answers as told."""

    def __init__(self):
        self.calls: list[dict] = []
        self.answers: dict = {}
        self.release = threading.Event()  # frees any page told to be slow
        self.app = Flask("recording_shop")
        self.app.add_url_rule("/<path:page>", view_func=self.answer, methods=["GET", "POST"])

    def answer(self, page: str):
        self.calls.append(
            {"page": page, "form": request.form.to_dict(), "cookie": request.headers.get("Cookie")}
        )
        answer = self.answers.get(page, ("OK", 200))
        return answer() if callable(answer) else answer

    def posts(self, page: str) -> list[dict]:
        return [call["form"] for call in self.calls if call["page"] == page]

    def config(self, *pages: str) -> dict:
        return {f"config[callback_{page}]": f"{self.url}/{page}" for page in pages}


@pytest.fixture
def merchant():
    shop = RecordingShop()
    with serving(shop.app) as server:
        shop.url = server.url
        yield shop
        shop.release.set()


def api(sandbox, method: str, auth=API_USER, **fields):
    response = requests.post(
        f"{sandbox.url}/altapay/merchant/API/{method}", data=fields, auth=auth, timeout=30
    )
    return response, (fromstring(response.content) if response.status_code == 200 else None)


def text(root, path: str) -> str:
    node = root.find(path)
    return "" if node is None or node.text is None else node.text.strip()


def create(sandbox, merchant=None, pages=("ok", "fail", "open", "notification"), **fields):
    # One order line, priced at the amount asked for: a basket must add up to the amount.
    line_price = fields.get("amount", "20.00")
    values = {
        "terminal": TERMINAL,
        "shop_orderid": "1001-1",
        "amount": "20.00",
        "currency": "EUR",
        "language": "en",
        "cookie": "shop_session=abc123",
        "customer_info[email]": "ann@example.com",
        "customer_info[billing_firstname]": "Ann",
        "orderLines[0][description]": "Tea",
        "orderLines[0][itemId]": "tea",
        "orderLines[0][quantity]": "1",
        "orderLines[0][unitPrice]": line_price,
        **(merchant.config(*pages) if merchant else {}),
        **fields,
    }
    response, root = api(sandbox, "createPaymentRequest", **values)
    assert text(root, "Header/ErrorCode") == "0", text(root, "Header/ErrorMessage")
    return text(root, "Body/PaymentRequestId"), text(root, "Body/Url")


def pay(url: str, session=None, **fields) -> requests.Response:
    http = session or requests.Session()
    return http.post(url, data={**CARD, **fields}, timeout=30, allow_redirects=False)


def transactions(sandbox, **query) -> list:
    _, root = api(sandbox, "payments", **query)
    return root.findall("Body/Transactions/Transaction")


def callback_xml(fields: dict):
    return fromstring(fields["xml"].encode())


# The API ---------------------------------------------------------------------------------------
def test_the_api_wants_http_basic_auth(sandbox):
    assert api(sandbox, "payments", auth=None)[0].status_code == 401
    assert api(sandbox, "payments", auth=("sandbox-api", "wrong"))[0].status_code == 401
    response, root = api(sandbox, "testConnection", auth=None)
    assert response.status_code == 200 and text(root, "Header/ErrorCode") == "0"
    response, root = api(sandbox, "login")
    assert text(root, "Body/Result") == "OK"


def test_create_payment_request_answers_a_hosted_page(sandbox):
    response, root = api(
        sandbox,
        "createPaymentRequest",
        terminal=TERMINAL,
        shop_orderid="1001-1",
        amount="20.5",
        currency="978",
    )
    assert response.headers["Content-Type"].startswith("text/xml")
    assert root.tag == "APIResponse"
    assert text(root, "Header/Path") == "API/createPaymentRequest"
    assert text(root, "Header/ErrorCode") == "0"
    assert text(root, "Body/Result") == "Success"
    pid = text(root, "Body/PaymentRequestId")
    assert re.fullmatch(r"[0-9a-f-]{36}", pid)
    assert text(root, "Body/Url") == (
        f"{sandbox.url}/altapay/merchant.php/API/requestForm?pid={pid}"
    )
    assert pid in text(root, "Body/DynamicJavascriptUrl")
    page = requests.get(text(root, "Body/Url"), timeout=10)
    assert page.status_code == 200
    assert "20.50 EUR" in page.text


@pytest.mark.parametrize(
    "field,value",
    [
        ("terminal", "Some Other Terminal"),
        ("shop_orderid", "1001 1"),
        ("shop_orderid", "x" * 101),
        ("amount", "20.005"),
        ("amount", "twenty"),
        ("currency", "XYZ"),
        ("type", "bogus"),
        ("language", "xx"),
        ("config[callback_ok]", "/relative/ok"),
    ],
)
def test_create_payment_request_refuses_malformed_calls(sandbox, field, value):
    fields = {"terminal": TERMINAL, "shop_orderid": "1001-1", "amount": "20.00", "currency": "EUR"}
    _, root = api(sandbox, "createPaymentRequest", **{**fields, field: value})
    assert text(root, "Header/ErrorCode") not in ("", "0")
    assert text(root, "Header/ErrorMessage")
    assert len(root.find("Body")) == 0  # an error carries an empty Body


@pytest.mark.parametrize(
    "method,fields",
    [
        ("createPaymentRequest", {"terminal": "Some Other Terminal", "shop_orderid": "1-1"}),
        ("captureReservation", {"transaction_id": "no-such-transaction"}),
        ("releaseReservation", {}),
        ("noSuchMethod", {}),
    ],
)
def test_an_error_has_an_empty_body_or_with_the_setting_none(sandbox, method, fields):
    _, root = api(sandbox, method, **fields)
    assert text(root, "Header/ErrorCode") == "200" and text(root, "Header/ErrorMessage")
    [body] = root.findall("Body")  # as the live API answers
    assert len(body) == 0 and not (body.text or "").strip()
    assert [child.tag for child in root] == ["Header", "Body"]
    sandbox.settings(**{"altapay:error_body": False})
    _, root = api(sandbox, method, **fields)
    assert text(root, "Header/ErrorCode") == "200" and text(root, "Header/ErrorMessage")
    assert root.find("Body") is None  # AltaPay's published error example


def test_payments_that_match_nothing(sandbox):
    _, root = api(sandbox, "payments", shop_orderid="never-used-1")
    assert text(root, "Header/ErrorCode") == "0"
    assert [child.tag for child in root.find("Body")] == ["ResultFilter"]  # as the live API
    assert text(root, "Body/ResultFilter/shop_orderid") == "never-used-1"
    sandbox.settings(**{"altapay:payments_no_match": "empty"})
    _, root = api(sandbox, "payments", shop_orderid="never-used-1")
    assert text(root, "Header/ErrorCode") == "0"
    assert [child.tag for child in root.find("Body")] == ["ResultFilter", "Transactions"]
    assert root.findall("Body/Transactions/Transaction") == []
    # A match still lists its transactions, whatever the setting.
    _, url = create(sandbox, shop_orderid="1003-1")
    pay(url)
    assert len(transactions(sandbox, shop_orderid="1003-1")) == 1


def test_a_shop_orderid_can_be_used_four_times(sandbox):
    for _ in range(4):
        create(sandbox, shop_orderid="1002-1")
    _, root = api(
        sandbox,
        "createPaymentRequest",
        terminal=TERMINAL,
        shop_orderid="1002-1",
        amount="20.00",
        currency="EUR",
    )
    assert text(root, "Header/ErrorCode") != "0"
    assert "4 times" in text(root, "Header/ErrorMessage")


def test_an_armed_transport_fault_answers_instead(sandbox):
    sandbox.arm("altapay", "createPaymentRequest", "http_503")
    assert api(sandbox, "createPaymentRequest", terminal=TERMINAL)[0].status_code == 503


# The hosted page -------------------------------------------------------------------------------
def test_the_built_in_page_lists_test_cards_and_has_no_javascript(sandbox):
    _, url = create(sandbox)
    page = requests.get(url, timeout=10).text
    assert 'id="PensioPaymentForm"' in page
    assert "4111111111111111" in page and "0566" in page
    assert "<script" not in page.lower()
    assert re.search(r"\son\w+=", page) is None


def test_the_merchants_form_page_is_fetched_stripped_and_given_the_card_fields(sandbox, merchant):
    merchant.answers["form"] = (
        """<html><head><script>bad()</script></head><body onload="bad()">
        <h1>Tea Shop checkout</h1>
        <form id="PensioPaymentForm" class="pay" action="https://shop.example/steal">
          <input name="shop_field" value="x"></form>
        <a href="javascript:bad()">help</a></body></html>""",
        200,
    )
    _, url = create(sandbox, merchant, pages=("ok", "form"))
    page = requests.get(url, timeout=10, headers={"User-Agent": "TestBrowser/1"}).text
    assert "Tea Shop checkout" in page
    assert 'name="cardno"' in page and 'class="pay"' in page
    assert "shop_field" not in page and "shop.example/steal" not in page
    assert "<script" not in page.lower() and "onload=" not in page
    assert "javascript:" not in page.lower()
    fetched = merchant.calls[0]
    assert fetched["form"]["shop_orderid"] == "1001-1" and fetched["form"]["currency"] == "978"
    assert fetched["cookie"] == "shop_session=abc123"


def test_an_invalid_card_number_shows_the_form_again(sandbox, merchant):
    _, url = create(sandbox, merchant)
    answer = pay(url, cardno="4111111111111112")
    assert answer.status_code == 200
    assert 'role="alert"' in answer.text and "card number" in answer.text
    assert merchant.calls == []
    assert transactions(sandbox, shop_orderid="1001-1") == []


def test_an_approved_card_is_signed_and_the_shops_page_relayed_without_javascript(
    sandbox, merchant
):
    merchant.answers["ok"] = (RELAYED_PAGE, 200)
    pid, url = create(sandbox, merchant, **{"transaction_info[order]": "1001"})
    answer = pay(url)
    assert answer.status_code == 200
    assert answer.url == url  # served from the gateway's own origin
    assert "Thank you for order 1001" in answer.text
    assert "Receipt &amp; details" in answer.text
    lowered = answer.text.lower()
    assert "<script" not in lowered and "onload=" not in lowered
    assert "onclick=" not in lowered and "onerror=" not in lowered
    assert "javascript:" not in lowered and "<iframe" not in lowered
    assert 'src="https://shop.example/logo.png"' in answer.text

    [posted] = merchant.posts("ok")
    assert posted["shop_orderid"] == "1001-1"
    assert posted["amount"] == "20.00" and posted["currency"] == "978"
    assert posted["status"] == "succeeded" and posted["payment_status"] == "preauth"
    assert posted["payment_id"] == pid and posted["require_capture"] == "true"
    assert posted["masked_credit_card"] == "411111******1111"
    assert posted["transaction_info[order]"] == "1001"
    assert posted["checksum"] == altapay_checksum(posted, SECRET)
    assert merchant.calls[0]["cookie"] == "shop_session=abc123"
    xml = callback_xml(posted)
    assert text(xml, "Body/Result") == "Success"
    txn = xml.find("Body/Transactions/Transaction")
    assert text(txn, "TransactionId") == posted["transaction_id"]
    assert text(txn, "ShopOrderId") == "1001-1" and text(txn, "PaymentId") == pid
    assert text(txn, "TransactionStatus") == "preauth"
    assert text(txn, "ReservedAmount") == "20.00" and text(txn, "CapturedAmount") == "0.00"
    assert text(txn, "MerchantCurrency") == "978"
    assert text(txn, "MerchantCurrencyAlpha") == "EUR"


def test_a_redirect_from_the_shop_is_forwarded_to_the_browser(sandbox, merchant):
    merchant.answers["ok"] = ("", 302, {"Location": "/receipt/tok123"})
    _, url = create(sandbox, merchant)
    answer = pay(url)
    assert answer.status_code == 303
    assert answer.headers["Location"] == f"{merchant.url}/receipt/tok123"


def test_payment_and_capture_is_captured_at_once(sandbox, merchant):
    _, url = create(sandbox, merchant, type="paymentAndCapture")
    pay(url)
    [posted] = merchant.posts("ok")
    assert posted["payment_status"] == "captured" and posted["require_capture"] == "false"
    txn = callback_xml(posted).find("Body/Transactions/Transaction")
    assert text(txn, "CapturedAmount") == "20.00"


@pytest.mark.parametrize(
    "amount,card,result,status",
    [
        ("20.00", "4180000000000566", "Failed", "failed"),
        ("20.66", "4111111111111111", "Failed", "failed"),
        ("20.67", "4111111111111111", "Error", "error"),
        ("20.00", "4180000000080667", "Error", "error"),
    ],
)
def test_declines_and_errors_call_the_fail_page(sandbox, merchant, amount, card, result, status):
    merchant.answers["fail"] = ("<p>Payment failed</p>", 200)
    _, url = create(sandbox, merchant, amount=amount)
    answer = pay(url, cardno=card)
    assert "Payment failed" in answer.text
    assert merchant.posts("ok") == []
    [posted] = merchant.posts("fail")
    assert posted["status"] == status
    assert posted["checksum"] == altapay_checksum(posted, SECRET)
    xml = callback_xml(posted)
    assert text(xml, "Body/Result") == result
    assert text(xml, "Body/MerchantErrorMessage")
    assert text(xml, "Body/CardHolderMessageMustBeShown") in ("true", "false")
    assert text(xml, "Body/Transactions/Transaction/ReservedAmount") == "0.00"


def test_cancel_calls_the_fail_page(sandbox, merchant):
    _, url = create(sandbox, merchant)
    requests.post(url, data={"action": "cancel"}, timeout=30)
    [posted] = merchant.posts("fail")
    assert posted["status"] == "cancelled"
    assert posted["payment_status"] == "epayment_cancelled"


@pytest.mark.parametrize(
    ("amount", "card"), [("20.68", "4111111111111111"), ("20.00", "4180000000070668")]
)
def test_an_open_payment_is_notified_when_final(sandbox, merchant, amount, card):
    sandbox.settings(**{"altapay:open_delay": 0.2})
    merchant.answers["open"] = ("<p>We are waiting for your bank</p>", 200)
    pid, url = create(sandbox, merchant, amount=amount)
    answer = pay(url, cardno=card)
    assert "waiting for your bank" in answer.text
    [opened] = merchant.posts("open")
    assert opened["status"] == "open"
    assert text(callback_xml(opened), "Body/Result") == "Open"

    [notified] = wait_for(lambda: merchant.posts("notification"), seconds=10.0)
    assert notified["status"] == "succeeded" and notified["payment_id"] == pid
    assert notified["checksum"] == altapay_checksum(notified, SECRET)
    txn = callback_xml(notified).find("Body/Transactions/Transaction")
    assert text(txn, "TransactionStatus") == "preauth"
    assert text(txn, "ReservedAmount") == amount
    [row] = transactions(sandbox, shop_orderid="1001-1")
    assert text(row, "TransactionStatus") == "preauth"


def test_an_open_payment_is_finished_when_the_clock_moves(sandbox, merchant):
    sandbox.settings(**{"altapay:open_delay": 3600})
    _, url = create(sandbox, merchant, amount="20.68")
    pay(url)
    [row] = transactions(sandbox, shop_orderid="1001-1")
    assert text(row, "TransactionStatus") == "open"
    sandbox.advance(3601)
    assert wait_for(lambda: merchant.posts("notification"), seconds=10.0)


def test_a_shop_too_slow_to_answer_gets_the_gateway_error_page(sandbox, merchant):
    sandbox.settings(**{"altapay:read_timeout": 1})

    def slow():
        merchant.release.wait(2)
        return "too late", 200

    merchant.answers["ok"] = slow
    pid, url = create(sandbox, merchant)
    answer = pay(url)
    assert answer.status_code == 502
    assert "1001-1" in answer.text and pid in answer.text
    assert "in time" in answer.text
    [record] = sandbox.state()["altapay_callback"]
    assert record["answer"]["error"] == "ReadTimeout"


def test_a_shop_answering_an_error_gets_the_gateway_error_page(sandbox, merchant):
    merchant.answers["ok"] = ("broken", 500)
    pid, url = create(sandbox, merchant)
    answer = pay(url)
    assert answer.status_code == 502 and pid in answer.text and "HTTP 500" in answer.text


def test_verify_order_refusal_stops_the_payment_with_the_shops_reason(sandbox, merchant):
    merchant.answers["verify_order"] = ("<p>Sorry, <b>out of stock</b></p>", 200)
    _, url = create(sandbox, merchant, pages=("ok", "fail", "verify_order"))
    answer = pay(url)
    assert 'role="alert"' in answer.text and "Sorry, out of stock" in answer.text
    [asked] = merchant.posts("verify_order")
    assert asked["shop_orderid"] == "1001-1" and asked["checksum"] == altapay_checksum(
        asked, SECRET
    )
    assert merchant.posts("ok") == [] and merchant.posts("fail") == []
    assert transactions(sandbox, shop_orderid="1001-1") == []

    merchant.answers["verify_order"] = ("OKAY", 200)
    pay(url)
    assert len(merchant.posts("ok")) == 1


def test_paying_a_completed_payment_again_calls_the_fail_page_with_the_money(sandbox, merchant):
    _, url = create(sandbox, merchant)
    pay(url)
    assert "already been completed" in requests.get(url, timeout=10).text
    pay(url)  # the back button, and the form sent again
    [first] = merchant.posts("ok")
    [again] = merchant.posts("fail")
    assert again["status"] == "failed"
    assert again["transaction_id"] == first["transaction_id"]
    xml = callback_xml(again)
    assert text(xml, "Body/Result") == "Failed"
    assert text(xml, "Body/Transactions/Transaction/TransactionStatus") == "preauth"
    assert text(xml, "Body/Transactions/Transaction/ReservedAmount") == "20.00"


# Callback faults -------------------------------------------------------------------------------
def test_fault_bad_checksum(sandbox, merchant):
    sandbox.arm("altapay", "callback", "bad_checksum")
    _, url = create(sandbox, merchant)
    pay(url)
    [posted] = merchant.posts("ok")
    assert re.fullmatch(r"[0-9a-f]{32}", posted["checksum"])
    assert posted["checksum"] != altapay_checksum(posted, SECRET)


def test_fault_no_checksum(sandbox, merchant):
    sandbox.arm("altapay", "callback", "no_checksum")
    _, url = create(sandbox, merchant)
    pay(url)
    assert "checksum" not in merchant.posts("ok")[0]


def test_fault_tamper_amount_keeps_a_valid_checksum_and_a_consistent_xml(sandbox, merchant):
    sandbox.arm("altapay", "callback", "tamper_amount", amount="1.00")
    _, url = create(sandbox, merchant)
    pay(url)
    [posted] = merchant.posts("ok")
    assert posted["amount"] == "1.00"
    assert posted["checksum"] == altapay_checksum(posted, SECRET)
    assert text(callback_xml(posted), "Body/Transactions/Transaction/ReservedAmount") == "1.00"
    [row] = transactions(sandbox, shop_orderid="1001-1")
    assert text(row, "ReservedAmount") == "20.00"  # the gateway's own record is untouched


def test_fault_tamper_currency(sandbox, merchant):
    sandbox.arm("altapay", "callback", "tamper_currency")
    _, url = create(sandbox, merchant)
    pay(url)
    [posted] = merchant.posts("ok")
    assert posted["currency"] == "840" and posted["checksum"] == altapay_checksum(posted, SECRET)
    txn = callback_xml(posted).find("Body/Transactions/Transaction")
    assert text(txn, "MerchantCurrency") == "840" and text(txn, "MerchantCurrencyAlpha") == "USD"


def test_fault_other_orderid(sandbox, merchant):
    sandbox.arm("altapay", "callback", "other_orderid", orderid="2002-1")
    _, url = create(sandbox, merchant)
    pay(url)
    [posted] = merchant.posts("ok")
    assert posted["shop_orderid"] == "2002-1" and posted["checksum"] == altapay_checksum(
        posted, SECRET
    )
    assert text(callback_xml(posted), "Body/Transactions/Transaction/ShopOrderId") == "2002-1"


def test_fault_malformed_xml(sandbox, merchant):
    sandbox.arm("altapay", "callback", "malformed_xml")
    _, url = create(sandbox, merchant)
    pay(url)
    [posted] = merchant.posts("ok")
    assert posted["xml"].startswith("<?xml")
    with pytest.raises(ParseError):
        callback_xml(posted)


def test_fault_duplicate(sandbox, merchant):
    sandbox.arm("altapay", "callback", "duplicate", copies=3)
    _, url = create(sandbox, merchant)
    pay(url)
    posts = merchant.posts("ok")
    assert len(posts) == 3 and all(p == posts[0] for p in posts)


def test_fault_fail_after_success(sandbox, merchant):
    sandbox.arm("altapay", "callback", "fail_after_success")
    merchant.answers["ok"] = ("<p>Paid</p>", 200)
    _, url = create(sandbox, merchant)
    assert "Paid" in pay(url).text
    [late] = wait_for(lambda: merchant.posts("fail"), seconds=10.0)
    [ok] = merchant.posts("ok")
    assert late["transaction_id"] == ok["transaction_id"] and late["status"] == "failed"
    assert late["checksum"] == altapay_checksum(late, SECRET)
    xml = callback_xml(late)
    assert text(xml, "Body/Transactions/Transaction/TransactionStatus") == "preauth"


# Back office -----------------------------------------------------------------------------------
def reserved(sandbox, amount: str = "20.00", shop_orderid: str = "1003-1") -> str:
    _, url = create(sandbox, amount=amount, shop_orderid=shop_orderid)
    assert pay(url).status_code == 200
    [row] = transactions(sandbox, shop_orderid=shop_orderid)
    return text(row, "TransactionId")


def test_partial_captures_and_refunds_follow_the_state_machine(sandbox):
    txn = reserved(sandbox)
    _, root = api(sandbox, "captureReservation", transaction_id=txn, amount="5.00")
    assert text(root, "Body/Result") == "Success" and text(root, "Body/CaptureResult") == "Success"
    assert (
        text(root, "Body/CaptureAmount") == "5.00" and text(root, "Body/CaptureCurrency") == "978"
    )
    assert text(root, "Body/Transactions/Transaction/TransactionStatus") == "captured"
    assert text(root, "Body/Transactions/Transaction/CapturedAmount") == "5.00"

    _, root = api(sandbox, "captureReservation", transaction_id=txn)  # the rest
    assert text(root, "Body/CaptureAmount") == "15.00"
    _, root = api(sandbox, "captureReservation", transaction_id=txn, amount="1.00")
    assert text(root, "Body/Result") == "Failed" and text(root, "Body/MerchantErrorMessage")

    _, root = api(sandbox, "refundCapturedReservation", transaction_id=txn, amount="5.00")
    assert text(root, "Body/Result") == "Success" and text(root, "Body/RefundResult") == "Success"
    assert text(root, "Body/RefundAmount") == "5.00"
    txn_xml = root.find("Body/Transactions/Transaction")
    assert text(txn_xml, "TransactionStatus") == "refunded"
    assert text(txn_xml, "RefundedAmount") == "5.00"
    assert len(txn_xml.findall("ReconciliationIdentifiers/ReconciliationIdentifier")) == 3

    _, root = api(sandbox, "refundCapturedReservation", transaction_id=txn, amount="15.01")
    assert text(root, "Body/Result") == "Failed" and text(root, "Body/RefundResult") == "Failed"
    _, root = api(sandbox, "releaseReservation", transaction_id=txn)
    assert text(root, "Body/Result") == "Failed"


def test_release_frees_a_reservation_once(sandbox):
    txn = reserved(sandbox)
    _, root = api(sandbox, "releaseReservation", transaction_id=txn)
    assert text(root, "Body/Result") == "Success" and text(root, "Body/CancelResult") == "Success"
    assert text(root, "Body/Transactions/Transaction/TransactionStatus") == "released"
    _, root = api(sandbox, "releaseReservation", transaction_id=txn)
    assert text(root, "Body/Result") == "Failed"
    _, root = api(sandbox, "captureReservation", transaction_id=txn)
    assert text(root, "Body/Result") == "Failed"


def test_release_after_a_partial_capture_frees_the_rest_and_keeps_the_capture(sandbox):
    txn = reserved(sandbox)
    api(sandbox, "captureReservation", transaction_id=txn, amount="5.00")
    _, root = api(sandbox, "releaseReservation", transaction_id=txn)
    assert text(root, "Body/Result") == "Success" and text(root, "Body/CancelResult") == "Success"
    txn_xml = root.find("Body/Transactions/Transaction")
    assert text(txn_xml, "TransactionStatus") == "captured"
    assert (text(txn_xml, "ReservedAmount"), text(txn_xml, "CapturedAmount")) == ("20.00", "5.00")
    _, root = api(sandbox, "captureReservation", transaction_id=txn, amount="1.00")
    assert text(root, "Body/Result") == "Failed"  # nothing is reserved any more
    _, root = api(sandbox, "releaseReservation", transaction_id=txn)
    assert text(root, "Body/Result") == "Failed"
    _, root = api(sandbox, "refundCapturedReservation", transaction_id=txn, amount="5.00")
    assert text(root, "Body/Result") == "Success"


@pytest.mark.parametrize(
    "method,amount,capture,result",
    [
        ("captureReservation", "10.00", "7.66", "Failed"),
        ("captureReservation", "10.00", "7.67", "Error"),
        ("captureReservation", "7.66", "", "Failed"),
        ("releaseReservation", "8.66", "", "Failed"),
        ("releaseReservation", "8.67", "", "Error"),
    ],
)
def test_back_office_test_amounts_fail(sandbox, method, amount, capture, result):
    txn = reserved(sandbox, amount=amount)
    fields = {"transaction_id": txn, **({"amount": capture} if capture else {})}
    _, root = api(sandbox, method, **fields)
    assert text(root, "Body/Result") == result
    assert text(root, "Body/Transactions/Transaction/TransactionStatus") == "preauth"


def test_back_office_calls_on_unknown_transactions_are_malformed(sandbox):
    _, root = api(sandbox, "captureReservation", transaction_id="99")
    assert text(root, "Header/ErrorCode") != "0" and len(root.find("Body")) == 0


def test_payments_answers_at_most_ten_rows(sandbox):
    declined = "4180000000000566"
    for _ in range(4):
        _, url = create(sandbox, shop_orderid="1004-1")
        pay(url, cardno=declined)
        pay(url, cardno=declined)
        pay(url)
    rows = transactions(sandbox, shop_orderid="1004-1")
    assert len(rows) == 10
    [one] = transactions(sandbox, transaction_id=text(rows[2], "TransactionId"))
    assert text(one, "PaymentId") == text(rows[2], "PaymentId")
    assert len(transactions(sandbox, payment_id=text(rows[0], "PaymentId"))) == 3


@pytest.mark.parametrize(
    ("language", "heading", "cancel"),
    [
        ("en", "Card payment", "Cancel payment"),
        ("de", "Kartenzahlung", "Zahlung abbrechen"),
        ("ru", "Оплата картой", "Отменить оплату"),
        ("sv", "Card payment", "Cancel payment"),  # offered, but the sandbox has no Swedish
    ],
)
def test_the_built_in_page_is_in_the_requested_language(sandbox, language, heading, cancel):
    _, url = create(sandbox, language=language)
    page = requests.get(url, timeout=10).text
    assert f"<h1>{heading}</h1>" in page and f">{cancel}</button>" in page
