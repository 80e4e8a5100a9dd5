"""The AltaPay adapter against AltaPay's own payloads served over real HTTP on loopback, and
against the live sandbox gateway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from flask import Flask, request

from storefront.gateways.altapay import AltaPayGateway, checksum
from storefront.gateways.base import (
    AttemptRef,
    BadNotice,
    GatewayError,
    GatewayRefused,
    Journal,
    Line,
    Outcome,
    PaymentRequest,
    Trigger,
)
from tests.adapters import CannedGateway, journal_text, records, settings
from tests.oracles import altapay_checksum
from tests.servers import serving

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "altapay"
SECRET = "mySharedSecret"
BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<APIResponse version="20100929"><Header><ErrorCode>0</ErrorCode><ErrorMessage>&lol3;</ErrorMessage>
</Header></APIResponse>"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<APIResponse><Header><ErrorCode>0</ErrorCode><ErrorMessage>&x;</ErrorMessage></Header></APIResponse>"""


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def sign(amount: str, currency: str, shop_orderid: str, secret: str = SECRET) -> str:
    fields = {"amount": amount, "currency": currency, "shop_orderid": shop_orderid}
    return altapay_checksum(fields, secret)


@pytest.fixture
def fake():
    gateway = CannedGateway("fake_altapay", "/merchant/API", "text/xml; charset=utf-8")
    with serving(gateway.app) as server:
        gateway.url = server.url
        yield gateway


def make_adapter(url: str, **overrides) -> AltaPayGateway:
    values = dict(
        url=url,
        username="api-user",
        password="s3cret-pass",
        terminal="AltaPay Test Terminal",
        secret=SECRET,
        capture=False,
        connect_timeout=2,
        read_timeout=3,
    )
    values.update(overrides)
    return AltaPayGateway(**values)


@pytest.fixture
def adapter(fake):
    return make_adapter(f"{fake.url}/merchant/API/")


def payment_request(**overrides) -> PaymentRequest:
    values = dict(
        reference="10000001-1",
        order_number="10000001",
        amount=2000,
        currency="EUR",
        description="Order 10000001",
        email="ann@example.com",
        customer_name="Ann Marie Example",
        country="IE",
        language="en",
        lines=(Line("Tea", 2, 1000),),
        return_url="https://shop.example/pay/altapay/return/tok",
        fail_url="https://shop.example/pay/altapay/return/tok",
        callback_urls={
            kind: f"https://shop.example/pay/altapay/callback/{kind}"
            for kind in ("ok", "fail", "open", "notification")
        },
    )
    values.update(overrides)
    return PaymentRequest(**values)


def ref(**overrides) -> AttemptRef:
    values = dict(
        reference="myorderid",
        gateway_id="ccc1479c-37f9-4962-8d2c-662d75117e9d",
        amount=100,
        currency="EUR",
        data={"transaction_id": "1"},
    )
    values.update(overrides)
    return AttemptRef(**values)


def api_response(body: str, path: str = "payments") -> str:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<APIResponse version="20170228"><Header><Date>2024-01-01T10:00:00+00:00</Date>
<Path>API/{path}</Path><ErrorCode>0</ErrorCode><ErrorMessage/></Header>
<Body>{body}</Body></APIResponse>"""


def transaction(
    *,
    status="preauth",
    reserved="20.00",
    captured="0.00",
    refunded="0.00",
    currency="978",
    alpha="EUR",
    order="10000001-1",
    txn="42",
    payment="pay-1",
    terminal="AltaPay Test Terminal",
) -> str:
    return f"""<Transaction><TransactionId>{txn}</TransactionId><PaymentId>{payment}</PaymentId>
<CreditCardMaskedPan>411111******1111</CreditCardMaskedPan>
<CreditCardToken>tok-secret-value</CreditCardToken>
<ShopOrderId>{order}</ShopOrderId><Terminal>{terminal}</Terminal>
<TransactionStatus>{status}</TransactionStatus><MerchantCurrency>{currency}</MerchantCurrency>
<MerchantCurrencyAlpha>{alpha}</MerchantCurrencyAlpha><ReservedAmount>{reserved}</ReservedAmount>
<CapturedAmount>{captured}</CapturedAmount><RefundedAmount>{refunded}</RefundedAmount>
</Transaction>"""


def callback_xml(result="Success", must_show="false", holder="", *transactions: str) -> str:
    outcome = f"<Result>{result}</Result>"
    if result != "Success":
        outcome += (
            "<MerchantErrorMessage>acquirer said no</MerchantErrorMessage>"
            f"<CardHolderErrorMessage>{holder}</CardHolderErrorMessage>"
            f"<CardHolderMessageMustBeShown>{must_show}</CardHolderMessageMustBeShown>"
        )
    body = (
        outcome + "<Transactions>" + "".join(transactions or (transaction(),)) + "</Transactions>"
    )
    return api_response(body, "reservationOfFixedAmount")


def callback_form(xml: str, amount="20.00", currency="978", order="10000001-1", **extra) -> dict:
    form = {
        "shop_orderid": order,
        "currency": currency,
        "amount": amount,
        "type": "payment",
        "transaction_id": "42",
        "payment_id": "pay-1",
        "status": "succeeded",
        "xml": xml,
        "checksum": sign(amount, currency, order),
    }
    form.update(extra)
    return form


# Starting ----------------------------------------------------------------------------------------
def test_checksum_matches_the_worked_example():
    assert checksum("23.18", "208", "000000289", "mySharedSecret") == (
        "69502a3393ab0d6fe52f719f643a5761"
    )
    assert sign("23.18", "208", "000000289", "mySharedSecret") == (
        "69502a3393ab0d6fe52f719f643a5761"
    )  # the tests' own oracle agrees


def test_each_attempt_has_its_own_shop_orderid(adapter):
    assert adapter.reference_for("10000001", 2) == "10000001-2"


def test_from_config_reads_the_altapay_settings():
    gateway = AltaPayGateway.from_config(
        settings(
            **{
                "ALTAPAY_URL": "https://shop.altapaysecure.com/merchant/API",
                "ALTAPAY_USERNAME": "u",
                "ALTAPAY_PASSWORD": "p",
                "ALTAPAY_TERMINAL": "T",
                "ALTAPAY_SECRET": "s",
                "ALTAPAY_CAPTURE": True,
                "GATEWAY_CONNECT_TIMEOUT": 1.5,
                "GATEWAY_READ_TIMEOUT": 9.0,
            }
        )
    )
    assert gateway.base == "https://shop.altapaysecure.com/merchant/API/"
    assert gateway.timeout == (1.5, 9.0) and gateway.capture_at_once
    assert (gateway.name, gateway.supports_refund) == ("altapay", True)


def test_create_payment_request_sends_a_bracketed_form_with_basic_auth(adapter, fake):
    fake.set("createPaymentRequest", fixture("paymentrequest.xml"))
    journal = Journal()
    redirect = adapter.start(payment_request(), journal)
    assert redirect.gateway_id == "2349494a-6adf-49f7-8096-2125a969e104"
    assert redirect.url == (
        "https://gateway.altapaysecure.com/merchant.php/API/requestForm"
        "?pid=2349494a-6adf-49f7-8096-2125a969e104"
    )
    [(method, sent, authorization)] = fake.calls
    assert method == "createPaymentRequest"
    assert authorization.startswith("Basic ")
    assert sent["terminal"] == "AltaPay Test Terminal"
    assert sent["shop_orderid"] == "10000001-1"
    assert (sent["amount"], sent["currency"], sent["type"]) == ("20.00", "EUR", "payment")
    assert sent["language"] == "en"
    assert sent["config[callback_ok]"] == "https://shop.example/pay/altapay/callback/ok"
    assert sent["config[callback_notification]"].endswith("/callback/notification")
    assert "config[callback_form]" not in sent
    assert sent["customer_info[email]"] == "ann@example.com"
    assert sent["customer_info[billing_firstname]"] == "Ann Marie"
    assert sent["customer_info[billing_lastname]"] == "Example"
    assert sent["customer_info[billing_country]"] == "IE"
    assert sent["orderLines[0][description]"] == "Tea"
    assert sent["orderLines[0][itemId]"] == "1"
    assert (sent["orderLines[0][quantity]"], sent["orderLines[0][unitPrice]"]) == ("2", "10.00")
    assert "s3cret-pass" not in journal_text(journal)  # the evidence log never holds the password


def test_capture_at_once_asks_for_payment_and_capture(fake):
    adapter = make_adapter(f"{fake.url}/merchant/API/", capture=True)
    fake.set("createPaymentRequest", fixture("paymentrequest.xml"))
    adapter.start(payment_request(), Journal())
    assert fake.calls[0][1]["type"] == "paymentAndCapture"


@pytest.mark.parametrize("amount,currency,sent", [(500, "JPY", "500.00"), (1250, "KWD", "1.25")])
def test_amounts_are_major_units_with_two_decimals(adapter, fake, amount, currency, sent):
    fake.set("createPaymentRequest", fixture("paymentrequest.xml"))
    adapter.start(payment_request(amount=amount, currency=currency, lines=()), Journal())
    assert fake.calls[0][1]["amount"] == sent


def test_a_header_error_is_a_refusal(adapter, fake):
    fake.set("createPaymentRequest", fixture("header_error.xml"))
    with pytest.raises(GatewayRefused) as refused:
        adapter.start(payment_request(), Journal())
    assert refused.value.code == "200"
    assert str(refused.value) == "This request has error"


def test_a_failed_result_is_a_refusal(adapter, fake):
    body = "<Result>Error</Result><MerchantErrorMessage>Unknown terminal</MerchantErrorMessage>"
    fake.set("createPaymentRequest", api_response(body, "createPaymentRequest"))
    with pytest.raises(GatewayRefused) as refused:
        adapter.start(payment_request(), Journal())
    assert (refused.value.code, str(refused.value)) == ("Error", "Unknown terminal")


def test_refused_credentials_are_a_refusal(adapter, fake):
    fake.set("createPaymentRequest", "Unauthorized", status=401)
    with pytest.raises(GatewayRefused) as refused:
        adapter.start(payment_request(), Journal())
    assert refused.value.code == "401"


@pytest.mark.parametrize(
    "status,body",
    [
        (500, "oops"),
        (503, "<html>down</html>"),
        (200, "<!doctype html><title>Maintenance</title>"),
        (200, '<?xml version="1.0"?><APIRespo'),
        (200, "<Response><ErrorCode>0</ErrorCode></Response>"),
        (200, ""),
        (200, BILLION_LAUGHS),
        (200, EXTERNAL_ENTITY),
    ],
)
def test_unreadable_answers_are_unknown_not_refused(adapter, fake, status, body):
    fake.set("createPaymentRequest", body, status=status)
    with pytest.raises(GatewayError):
        adapter.start(payment_request(), Journal())
    assert fake.methods() == ["createPaymentRequest"]  # registration is never repeated


def test_entity_expansion_is_refused_not_expanded(adapter, fake):
    fake.set("payments", BILLION_LAUGHS)
    with pytest.raises(GatewayError) as lost:
        adapter.fetch_result(ref(), Journal())
    assert "DTDForbidden" in str(lost.value)


def test_an_unreachable_gateway_is_unknown():
    adapter = make_adapter("http://127.0.0.1:9/merchant/API/", connect_timeout=0.5)
    with pytest.raises(GatewayError):
        adapter.start(payment_request(), Journal())


# Status query ----------------------------------------------------------------------------------
def test_payments_reads_a_captured_transaction(adapter, fake):
    fake.set("payments", fixture("payment.xml"))
    result = adapter.fetch_result(ref(), Journal())
    assert fake.calls[0][1] == {"shop_orderid": "myorderid"}
    assert result.outcome is Outcome.PAID
    assert (result.amount, result.currency, result.captured, result.refunded) == (
        100,
        "EUR",
        100,
        0,
    )
    assert result.reference == "myorderid"
    # The attempt is named by shop_orderid alone; the PaymentId is kept for the back office.
    assert result.gateway_id is None
    assert result.data["payment_id"] == "ccc1479c-37f9-4962-8d2c-662d75117e9d"
    assert result.masked_card == "411111******1111"
    assert result.gateway_ref == "1"
    assert result.merchant == "AltaPay Test Terminal"
    assert result.codes == "TransactionStatus=captured"
    assert result.data == {
        "transaction_id": "1",
        "payment_id": "ccc1479c-37f9-4962-8d2c-662d75117e9d",
    }


def test_a_double_payment_names_the_other_transaction(adapter, fake):
    fake.set("payments", fixture("payments.xml"))
    first = adapter.fetch_result(ref(data={}), Journal())
    assert first.data["transaction_id"] == "1"
    assert first.data["other_transactions"] == ["2"]
    ours = adapter.fetch_result(
        ref(gateway_id="aaa1479c-37f9-4962-8d2c-662d75117e9d", data={}), Journal()
    )
    assert ours.data["transaction_id"] == "2" and ours.data["other_transactions"] == ["1"]


def test_the_transaction_holding_money_wins_over_declined_tries(adapter, fake):
    body = "<Transactions>" + transaction(status="epayment_declined", reserved="0.00", txn="7")
    body += transaction(status="preauth", txn="8", order="myorderid", reserved="1.00")
    body = body.replace("10000001-1", "myorderid") + "</Transactions>"
    fake.set("payments", api_response(body))
    result = adapter.fetch_result(ref(data={}), Journal())
    assert result.outcome is Outcome.AUTHORIZED
    assert result.data["transaction_id"] == "8" and result.data["other_transactions"] == ["7"]


def test_no_transaction_yet_is_pending(adapter, fake):
    fake.set("payments", api_response("<ResultFilter/><Transactions/>"))
    assert adapter.fetch_result(ref(), Journal()).outcome is Outcome.PENDING


def test_releasing_the_rest_of_a_partial_capture_reports_what_was_given_back(adapter, fake):
    answer = transaction(status="captured", reserved="12.50", captured="7.50")
    body = "<Result>Success</Result><CancelResult>Success</CancelResult>"
    fake.set("releaseReservation", api_response(f"{body}<Transactions>{answer}</Transactions>"))
    result = adapter.release_rest(
        ref(reference="10000001-1", data={"transaction_id": "42"}), Journal()
    )
    assert fake.calls[0][1] == {"transaction_id": "42"}
    assert (result.outcome, result.captured, result.released) == (Outcome.PAID, 750, 500)


@pytest.mark.parametrize("refunded,outcome", [("0.00", Outcome.PAID), ("2.00", Outcome.REFUNDED)])
def test_a_released_transaction_with_money_captured_stays_captured(
    adapter, fake, refunded, outcome
):
    answer = transaction(status="released", reserved="12.50", captured="7.50", refunded=refunded)
    fake.set("payments", api_response(f"<Transactions>{answer}</Transactions>"))
    result = adapter.fetch_result(ref(reference="10000001-1"), Journal())
    assert (result.outcome, result.captured) == (outcome, 750)


def header_error(path: str, body: str) -> str:
    """A call AltaPay refused in its Header: without a Body, or with an empty one."""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<APIResponse version="20170228"><Header><Date>2024-01-01T10:00:00+00:00</Date>
<Path>API/{path}</Path><ErrorCode>200</ErrorCode><ErrorMessage>Unknown terminal</ErrorMessage>
</Header>{body}</APIResponse>"""


@pytest.mark.parametrize("body", ["", "<Body/>", "<Body></Body>"])
def test_a_header_error_is_a_refusal_with_or_without_an_empty_body(adapter, fake, body):
    fake.set("createPaymentRequest", header_error("createPaymentRequest", body))
    with pytest.raises(GatewayRefused) as refused:
        adapter.start(payment_request(), Journal())
    assert (refused.value.code, str(refused.value)) == ("200", "Unknown terminal")
    fake.set("captureReservation", header_error("captureReservation", body))
    with pytest.raises(GatewayRefused) as refused:
        adapter.capture(ref(), 100, Journal())
    assert refused.value.code == "200"


@pytest.mark.parametrize("body", ["", "<Body/>"])
def test_a_header_error_on_the_status_query_is_unknown_with_or_without_a_body(adapter, fake, body):
    fake.set("payments", header_error("payments", body))
    with pytest.raises(GatewayError) as unknown:
        adapter.fetch_result(ref(), Journal())
    assert not isinstance(unknown.value, GatewayRefused)


@pytest.mark.parametrize(
    "body",
    [
        "<ResultFilter/><Transactions/>",
        "<ResultFilter/>",
        "<ResultFilter><ShopOrderId>myorderid</ShopOrderId></ResultFilter>",
        "<Result>Success</Result><ResultFilter><ShopOrderId>myorderid</ShopOrderId></ResultFilter>",
        "",
    ],
)
def test_payments_matching_nothing_is_pending_whatever_the_shape(adapter, fake, body):
    fake.set("payments", api_response(body))
    result = adapter.fetch_result(ref(), Journal())
    assert result.outcome is Outcome.PENDING
    assert fake.calls[0][1] == {"shop_orderid": "myorderid"}


def test_a_failed_status_query_is_unknown_never_failed(adapter, fake):
    fake.set("payments", fixture("header_error.xml"))
    with pytest.raises(GatewayError):
        adapter.fetch_result(ref(), Journal())


def test_the_status_query_is_retried_once_after_a_5xx(adapter, fake):
    fake.set("payments", "busy", status=503)
    with pytest.raises(GatewayError):
        adapter.fetch_result(ref(), Journal())
    assert fake.methods() == ["payments", "payments"]


# Back office -------------------------------------------------------------------------------------
def test_capture_sends_the_transaction_and_two_decimals(adapter, fake):
    fake.set("captureReservation", fixture("capture.xml"))
    result = adapter.capture(ref(), 20, Journal())
    assert fake.calls[0][1] == {"transaction_id": "1", "amount": "0.20"}
    assert result.outcome is Outcome.PAID
    assert (result.amount, result.captured) == (100, 100)
    assert result.codes == "Result=Success TransactionStatus=captured"


def test_release_reads_released_as_voided(adapter, fake):
    fake.set("releaseReservation", fixture("release.xml"))
    result = adapter.void(ref(), Journal())
    assert fake.calls[0][1] == {"transaction_id": "1"}
    assert result.outcome is Outcome.VOIDED


def test_refund_reads_the_refunded_amount(adapter, fake):
    fake.set("refundCapturedReservation", fixture("refundcapture.xml"))
    result = adapter.refund(ref(), 12, Journal())
    assert fake.calls[0][1] == {"transaction_id": "1", "amount": "0.12"}
    assert result.outcome is Outcome.REFUNDED
    assert (result.captured, result.refunded) == (100, 12)


def test_a_back_office_call_without_a_known_transaction_asks_payments_first(adapter, fake):
    fake.set("payments", fixture("payment.xml"))
    fake.set("captureReservation", fixture("capture.xml"))
    adapter.capture(ref(data={}), 100, Journal())
    assert fake.methods() == ["payments", "captureReservation"]
    assert fake.calls[1][1]["transaction_id"] == "1"


@pytest.mark.parametrize(
    "body,code,message",
    [
        (fixture("header_error.xml"), "200", "This request has error"),
        (
            api_response(
                "<CaptureAmount>7.66</CaptureAmount><Result>Failed</Result>"
                "<MerchantErrorMessage>Capture declined</MerchantErrorMessage>"
                "<CaptureResult>Failed</CaptureResult><Transactions>"
                + transaction(order="myorderid", txn="1")
                + "</Transactions>",
                "captureReservation",
            ),
            "Failed",
            "Capture declined",
        ),
    ],
)
def test_a_refused_capture_is_a_refusal_with_the_merchant_message(
    adapter, fake, body, code, message
):
    fake.set("captureReservation", body)
    with pytest.raises(GatewayRefused) as refused:
        adapter.capture(ref(), 766, Journal())
    assert (refused.value.code, str(refused.value)) == (code, message)


def test_a_lost_capture_answer_is_unknown(adapter, fake):
    fake.set("captureReservation", "gateway timeout", status=504)
    with pytest.raises(GatewayError):
        adapter.capture(ref(), 100, Journal())
    assert fake.methods() == ["captureReservation"]  # never repeated: it may have happened


# Callbacks -----------------------------------------------------------------------------------
def test_the_browser_never_returns_from_altapay(adapter):
    with pytest.raises(BadNotice):
        adapter.parse_return({"shop_orderid": "10000001-1"})


def test_a_signed_callback_carries_the_result(adapter):
    journal = Journal()
    notice = adapter.parse_callback("ok", callback_form(callback_xml()), journal)
    assert (notice.trigger, notice.kind) == (Trigger.CALLBACK, "ok")
    assert (notice.reference, notice.gateway_id) == ("10000001-1", None)
    result = notice.result
    assert result.data["payment_id"] == "pay-1"
    assert result.outcome is Outcome.AUTHORIZED
    assert (result.amount, result.currency, result.captured) == (2000, "EUR", 0)
    assert result.codes == "Result=Success TransactionStatus=preauth"
    assert result.data["transaction_id"] == "42"
    [(kind, _, detail)] = records(journal)
    assert kind == "callback" and "shop_orderid=10000001-1" in detail
    assert sign("20.00", "978", "10000001-1") not in detail
    assert "tok-secret-value" not in detail


def test_without_a_secret_the_callback_is_only_a_trigger(fake):
    adapter = make_adapter(f"{fake.url}/merchant/API/", secret="")
    form = callback_form(callback_xml())
    del form["checksum"]
    notice = adapter.parse_callback("notification", form, Journal())
    assert notice.result is None
    assert (notice.reference, notice.gateway_id, notice.kind) == (
        "10000001-1",
        None,
        "notification",
    )


@pytest.mark.parametrize(
    "mangle",
    [
        lambda f: f.pop("checksum"),
        lambda f: f.update(checksum="0" * 32),
        lambda f: f.update(checksum=sign("20.00", "978", "10000001-1", "another-secret")),
        lambda f: f.update(amount="2000.00"),  # a posted field changed after signing
        lambda f: f.update(shop_orderid="10000002-1"),
    ],
)
def test_a_missing_or_wrong_checksum_is_refused(adapter, mangle):
    form = callback_form(callback_xml())
    mangle(form)
    with pytest.raises(BadNotice) as refused:
        adapter.parse_callback("ok", form, Journal())
    assert refused.value.reference == form["shop_orderid"]


@pytest.mark.parametrize(
    "xml",
    [
        callback_xml("Success", "false", "", transaction(reserved="1999.00")),
        callback_xml("Success", "false", "", transaction(currency="208", alpha="DKK")),
        callback_xml("Success", "false", "", transaction(order="10000002-1")),
    ],
    ids=["amount", "currency", "shop_orderid"],
)
def test_an_xml_that_disagrees_with_the_signed_fields_is_refused(adapter, xml):
    with pytest.raises(BadNotice) as refused:
        adapter.parse_callback("ok", callback_form(xml), Journal())
    assert "disagrees" in str(refused.value)


@pytest.mark.parametrize(
    "xml",
    [
        "",
        "<APIResponse><Header>",
        "<html><body>hi</body></html>",
        BILLION_LAUGHS,
        EXTERNAL_ENTITY,
        callback_xml().replace("<ReservedAmount>20.00", "<ReservedAmount>20.005"),
    ],
)
def test_a_malformed_or_hostile_xml_is_refused(adapter, xml):
    with pytest.raises(BadNotice):
        adapter.parse_callback("ok", callback_form(xml), Journal())


def test_an_unknown_callback_page_is_refused(adapter):
    with pytest.raises(BadNotice):
        adapter.parse_callback("redirect", callback_form(callback_xml()), Journal())


@pytest.mark.parametrize(
    "result,status,reserved,captured,refunded,outcome",
    [
        ("Success", "preauth", "20.00", "0.00", "0.00", Outcome.AUTHORIZED),
        ("Success", "captured", "20.00", "20.00", "0.00", Outcome.PAID),
        ("Success", "bank_payment_finalized", "20.00", "20.00", "0.00", Outcome.PAID),
        ("Success", "released", "20.00", "0.00", "0.00", Outcome.VOIDED),
        ("Success", "refunded", "20.00", "20.00", "5.00", Outcome.REFUNDED),
        ("Open", "open", "0.00", "0.00", "0.00", Outcome.PENDING),
        ("Failed", "epayment_declined", "0.00", "0.00", "0.00", Outcome.DECLINED),
        ("Error", "error", "0.00", "0.00", "0.00", Outcome.DECLINED),
        ("Failed", "epayment_cancelled", "0.00", "0.00", "0.00", Outcome.CANCELLED),
        ("Success", "reauth_failed", "20.00", "0.00", "0.00", Outcome.EXPIRED),
        # "error" with money reserved is not a decline: read the amounts (§3.8).
        ("Error", "error", "20.00", "0.00", "0.00", Outcome.AUTHORIZED),
        ("Failed", "preauth", "20.00", "0.00", "0.00", Outcome.AUTHORIZED),
        ("Failed", "some_new_status", "20.00", "20.00", "0.00", Outcome.PAID),
    ],
)
def test_the_outcome_follows_status_and_amounts(
    adapter, result, status, reserved, captured, refunded, outcome
):
    xml = callback_xml(
        result,
        "false",
        "",
        transaction(status=status, reserved=reserved, captured=captured, refunded=refunded),
    )
    notice = adapter.parse_callback("ok", callback_form(xml), Journal())
    assert notice.result.outcome is outcome
    assert notice.result.codes == f"Result={result} TransactionStatus={status}"


def test_the_cardholder_message_is_shown_only_when_altapay_says_so(adapter):
    declined = transaction(status="epayment_declined", reserved="0.00")
    shown = callback_xml("Failed", "true", "Insufficient funds", declined)
    hidden = callback_xml("Failed", "false", "Do not show this", declined)
    assert adapter.parse_callback("fail", callback_form(shown), Journal()).result.message == (
        "Insufficient funds"
    )
    message = adapter.parse_callback("fail", callback_form(hidden), Journal()).result.message
    assert message and "Do not show this" not in message and "acquirer" not in message


def test_the_published_callback_body_is_refused_as_it_is_inconsistent(adapter):
    # AltaPay's own test body posts shop_orderid 000000022 and currency 840 around an xml for
    # order 000000316 in DKK: exactly what a forged xml would look like.
    form = json.loads(fixture("callback_failed_3dsecure.json"))
    form["checksum"] = sign(form["amount"], form["currency"], form["shop_orderid"])
    with pytest.raises(BadNotice) as refused:
        adapter.parse_callback("fail", form, Journal())
    assert refused.value.reference == "000000022"


def test_the_published_callback_xml_reads_as_a_declined_3d_secure_failure(adapter):
    form = json.loads(fixture("callback_failed_3dsecure.json"))
    form.update(shop_orderid="000000316", currency="208", transaction_id="1682")
    form["checksum"] = sign(form["amount"], "208", "000000316")
    notice = adapter.parse_callback("fail", form, Journal())
    result = notice.result
    assert result.data["payment_id"] == "96590f37-cf14-4861-bfb2-dff7f70be811"
    assert result.outcome is Outcome.DECLINED
    assert (result.amount, result.currency, result.reference) == (0, "DKK", "000000316")
    assert result.masked_card == "418000******0566"
    assert result.gateway_ref == "1682"
    assert result.merchant == "Dangleterre CC DKK"
    assert result.codes == "Result=Failed TransactionStatus=3dsecure_failed"
    # CardHolderMessageMustBeShown is false: the bank's text stays out of the customer's view.
    assert result.message == "The payment was declined."


# Against the live sandbox ------------------------------------------------------------------------
CARD = {"cardno": "4111111111111111", "emonth": "12", "eyear": "39", "cvc": "123"}


class ShopPages:
    """The shop's callback pages on loopback: keep what the gateway posted, answer a page."""

    def __init__(self):
        self.posted: dict[str, list[dict]] = {}
        self.app = Flask("shop_pages")
        self.app.add_url_rule("/callback/<kind>", view_func=self.page, methods=["POST"])

    def page(self, kind):
        self.posted.setdefault(kind, []).append(request.form.to_dict())
        return f"<p>page {kind}</p>", 200

    def urls(self) -> dict:
        kinds = ("ok", "fail", "open", "notification")
        return {kind: f"{self.url}/callback/{kind}" for kind in kinds}


@pytest.fixture
def pages():
    shop = ShopPages()
    with serving(shop.app) as server:
        shop.url = server.url
        yield shop


@pytest.fixture
def live(sandbox):
    return make_adapter(
        f"{sandbox.url}/altapay/merchant/API/",
        username="sandbox-api",
        password="sandbox-password",
        terminal="Storefront Sandbox Terminal",
        secret="sandbox-shared-secret",
    )


def paid(live, pages, reference="20000001-1", amount=2000, **card):
    redirect = live.start(
        payment_request(
            reference=reference,
            amount=amount,
            callback_urls=pages.urls(),
            lines=(Line("Tea", 1, amount),),
        ),
        Journal(),
    )
    answer = requests.post(redirect.url, data={**CARD, **card}, timeout=30)
    assert answer.status_code == 200
    return redirect, AttemptRef(
        reference=reference, gateway_id=redirect.gateway_id, amount=amount, currency="EUR"
    )


def test_live_payment_is_signed_authorized_captured_and_refunded(live, pages):
    redirect, attempt = paid(live, pages)
    assert redirect.url.startswith(live.base.replace("/merchant/API/", "/merchant.php/API/"))
    [posted] = pages.posted["ok"]
    notice = live.parse_callback("ok", posted, Journal())
    assert notice.result.outcome is Outcome.AUTHORIZED
    assert (notice.result.amount, notice.result.currency) == (2000, "EUR")
    assert notice.result.data["payment_id"] == redirect.gateway_id
    assert notice.reference == "20000001-1"
    attempt = AttemptRef(**{**attempt.__dict__, "data": notice.result.data})

    assert live.fetch_result(attempt, Journal()).outcome is Outcome.AUTHORIZED
    captured = live.capture(attempt, 500, Journal())
    assert (captured.outcome, captured.captured, captured.amount) == (Outcome.PAID, 500, 2000)
    assert live.capture(attempt, 1500, Journal()).captured == 2000
    with pytest.raises(GatewayRefused):
        live.capture(attempt, 1, Journal())
    refunded = live.refund(attempt, 700, Journal())
    assert (refunded.outcome, refunded.refunded) == (Outcome.REFUNDED, 700)
    with pytest.raises(GatewayRefused):
        live.refund(attempt, 1301, Journal())


def test_live_void_releases_the_reservation(live, pages):
    _, attempt = paid(live, pages, reference="20000002-1")
    assert live.void(attempt, Journal()).outcome is Outcome.VOIDED
    assert live.fetch_result(attempt, Journal()).outcome is Outcome.VOIDED
    with pytest.raises(GatewayRefused):
        live.void(attempt, Journal())


def test_live_declined_card_reads_declined(live, pages):
    _, attempt = paid(live, pages, reference="20000003-1", cardno="4180000000000566")
    [posted] = pages.posted["fail"]
    assert live.parse_callback("fail", posted, Journal()).result.outcome is Outcome.DECLINED
    assert live.fetch_result(attempt, Journal()).outcome is Outcome.DECLINED


def test_live_payment_not_yet_made_is_pending(live, pages):
    redirect = live.start(payment_request(reference="20000004-1"), Journal())
    attempt = AttemptRef(
        reference="20000004-1", gateway_id=redirect.gateway_id, amount=2000, currency="EUR"
    )
    assert live.fetch_result(attempt, Journal()).outcome is Outcome.PENDING


def test_live_refusals(live, sandbox):
    with pytest.raises(GatewayRefused) as refused:
        live.start(payment_request(reference="bad order id"), Journal())
    assert refused.value.code not in ("", "0")
    wrong = make_adapter(live.base, username="sandbox-api", password="nope")
    with pytest.raises(GatewayRefused) as refused:
        wrong.start(payment_request(), Journal())
    assert refused.value.code == "401"
    sandbox.arm("altapay", "payments", "html")
    with pytest.raises(GatewayError):
        live.fetch_result(ref(), Journal())


@pytest.mark.parametrize("shape", ["empty", "omit"])
def test_live_payments_matching_nothing_is_pending(live, sandbox, shape):
    sandbox.settings(**{"altapay:payments_no_match": shape})
    unknown = ref(reference="20000009-1", gateway_id=None, data={})
    assert live.fetch_result(unknown, Journal()).outcome is Outcome.PENDING


@pytest.mark.parametrize("error_body", [False, True])
def test_live_header_errors_are_refusals_with_or_without_a_body(live, sandbox, error_body):
    sandbox.settings(**{"altapay:error_body": error_body})
    other_terminal = make_adapter(
        live.base,
        username="sandbox-api",
        password="sandbox-password",
        terminal="No Such Terminal",
    )
    with pytest.raises(GatewayRefused) as refused:
        other_terminal.start(payment_request(), Journal())
    assert refused.value.code == "200"
    with pytest.raises(GatewayRefused) as refused:
        live.capture(ref(data={"transaction_id": "no-such-transaction"}), 100, Journal())
    assert refused.value.code == "200"


def test_live_double_payment_is_visible_to_the_shop(live, pages):
    first, attempt = paid(live, pages, reference="20000005-1")
    second, _ = paid(live, pages, reference="20000005-1")
    result = live.fetch_result(attempt, Journal())
    assert result.data["payment_id"] == first.gateway_id
    [other] = result.data["other_transactions"]
    assert other == pages.posted["ok"][1]["transaction_id"]


@pytest.mark.parametrize("fault", ["bad_checksum", "no_checksum", "malformed_xml"])
def test_live_broken_callbacks_are_refused(live, pages, sandbox, fault):
    sandbox.arm("altapay", "callback", fault)
    paid(live, pages, reference="20000006-1")
    with pytest.raises(BadNotice):
        live.parse_callback("ok", pages.posted["ok"][0], Journal())


def test_live_tampered_amount_passes_through_for_the_shop_to_bind(live, pages, sandbox):
    # The checksum is valid and the xml consistent: only comparing with the order catches it.
    sandbox.arm("altapay", "callback", "tamper_amount", amount="1.00")
    paid(live, pages, reference="20000007-1")
    result = live.parse_callback("ok", pages.posted["ok"][0], Journal()).result
    assert (result.outcome, result.amount) == (Outcome.AUTHORIZED, 100)
