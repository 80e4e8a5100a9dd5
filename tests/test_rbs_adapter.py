"""The BPC/RBS adapter against documented payloads, served over real HTTP on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from storefront.gateways.base import (
    AttemptRef,
    BadNotice,
    GatewayError,
    GatewayRefused,
    Journal,
    Line,
    Outcome,
    PaymentRequest,
)
from storefront.gateways.rbs import RbsGateway, checksum
from tests.adapters import CannedGateway, records
from tests.oracles import rbs_checksum
from tests.servers import serving

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "rbs"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


class FakeGateway(CannedGateway):
    """BPC/RBS on loopback: each method answers a canned JSON body; ``requests`` are the calls."""

    def __init__(self):
        super().__init__("fake_rbs", "/payment/rest", "application/json")

    @property
    def requests(self) -> list[tuple[str, dict]]:
        return [(method, form) for method, form, _ in self.calls]


@pytest.fixture
def fake():
    gateway = FakeGateway()
    with serving(gateway.app) as server:
        gateway.url = server.url
        yield gateway


@pytest.fixture
def adapter(fake):
    return RbsGateway(
        url=f"{fake.url}/payment/rest/",
        username="merchant-api",
        password="s3cret-pass",
        callback_key="ooc7slpvc61k7sf7ma7p4hrefr",
        two_phase=False,
        connect_timeout=2,
        read_timeout=2,
    )


def payment_request(**overrides) -> PaymentRequest:
    values = dict(
        reference="10000001_1",
        order_number="10000001",
        amount=2000,
        currency="EUR",
        description="Order 10000001",
        email="ann@example.com",
        customer_name="Ann Example",
        country="IE",
        language="en",
        lines=(Line("Tea", 2, 1000),),
        return_url="https://shop.example/pay/rbs/return/tok",
        fail_url="https://shop.example/pay/rbs/return/tok",
        callback_urls={"notification": "https://shop.example/pay/rbs/callback/notification"},
    )
    values.update(overrides)
    return PaymentRequest(**values)


def ref(**overrides) -> AttemptRef:
    values = dict(
        reference="7005",
        gateway_id="01491d0b-c848-7dd6-a20d-e96900a7d8c0",
        amount=2000,
        currency="EUR",
    )
    values.update(overrides)
    return AttemptRef(**values)


@pytest.mark.parametrize("example", fixture("checksum_examples.json"))
def test_checksum_matches_the_worked_examples(example):
    assert checksum(example["params"], example["key"]) == example["checksum"]
    assert rbs_checksum(example["params"], example["key"]) == example["checksum"]  # the oracle too


def test_register_sends_minor_units_numeric_currency_and_absolute_urls(adapter, fake):
    fake.set("register.do", fixture("register_ok.json"))
    journal = Journal()
    redirect = adapter.start(payment_request(), journal)
    assert redirect.gateway_id == "01491d0b-c848-7dd6-a20d-e96900a7d8c0"
    assert redirect.url.startswith("https://dev.bpcbt.com/payment/merchants/")
    method, sent = fake.requests[0]
    assert method == "register.do"
    assert sent["amount"] == "2000" and sent["currency"] == "978"
    assert sent["orderNumber"] == "10000001_1"
    assert sent["returnUrl"] == "https://shop.example/pay/rbs/return/tok"
    assert sent["dynamicCallbackUrl"] == "https://shop.example/pay/rbs/callback/notification"
    logged = "\n".join(detail for _, _, detail in records(journal))
    assert "s3cret-pass" not in logged  # the evidence log never holds the password


def test_two_phase_registers_a_preauthorization(adapter, fake):
    adapter.two_phase = True
    fake.set("registerPreAuth.do", fixture("register_ok.json"))
    adapter.start(payment_request(), Journal())
    assert fake.requests[0][0] == "registerPreAuth.do"


def test_register_with_three_decimal_currency_sends_minor_units(adapter, fake):
    fake.set("register.do", fixture("register_ok.json"))
    adapter.start(payment_request(amount=1250, currency="KWD"), Journal())
    assert fake.requests[0][1]["amount"] == "1250"
    assert fake.requests[0][1]["currency"] == "414"


def test_access_denied_is_a_refusal_not_an_unknown(adapter, fake):
    fake.set("register.do", fixture("register_access_denied.json"))
    with pytest.raises(GatewayRefused) as refused:
        adapter.start(payment_request(), Journal())
    assert refused.value.code == "5"


@pytest.mark.parametrize(
    "status,body", [(500, "{}"), (503, "down"), (200, "<html>busy</html>"), (200, '{"errorCo')]
)
def test_register_transport_faults_are_unknown(adapter, fake, status, body):
    fake.set("register.do", body, status=status)
    with pytest.raises(GatewayError):
        adapter.start(payment_request(), Journal())


def test_status_with_numbers_as_strings_reads_paid(adapter, fake):
    fake.set("getOrderStatusExtended.do", fixture("order_status_extended_deposited.json"))
    result = adapter.fetch_result(ref(), Journal())
    assert result.outcome is Outcome.PAID
    assert (result.amount, result.currency, result.captured) == (2000, "EUR", 2000)
    assert result.reference == "7005"
    assert result.gateway_id == "01491d0b-c848-7dd6-a20d-e96900a7d8c0"
    assert result.masked_card == "411111**1111"
    assert result.gateway_ref == "123456"


def test_status_with_legacy_capitalised_keys_reads_paid(adapter, fake):
    fake.set("getOrderStatusExtended.do", fixture("order_status_legacy_capitalised.json"))
    result = adapter.fetch_result(ref(), Journal())
    assert result.outcome is Outcome.PAID
    assert (result.amount, result.currency, result.masked_card) == (2000, "EUR", "411111**1111")


@pytest.mark.parametrize(
    "status,action,outcome",
    [
        (0, 0, Outcome.PENDING),
        (1, 0, Outcome.AUTHORIZED),
        (2, 0, Outcome.PAID),
        (3, 0, Outcome.VOIDED),
        (5, 0, Outcome.PENDING),
        (6, 2001, Outcome.DECLINED),
        (6, -2007, Outcome.EXPIRED),
        (6, 10, Outcome.CANCELLED),
        ("2", "0", Outcome.PAID),
    ],
)
def test_order_status_decides_the_outcome(adapter, fake, status, action, outcome):
    fake.set(
        "getOrderStatusExtended.do",
        {
            "errorCode": 0,
            "orderStatus": status,
            "actionCode": action,
            "amount": 2000,
            "currency": "978",
            "orderNumber": "7005",
        },
    )
    assert adapter.fetch_result(ref(), Journal()).outcome is outcome


@pytest.mark.parametrize(
    "body",
    [
        {"errorCode": "6", "errorMessage": "Order not found"},
        {"errorCode": 7, "errorMessage": "System error"},
        {"errorCode": "0"},
        [1, 2],
    ],
)
def test_a_failed_status_query_is_unknown_never_failed(adapter, fake, body):
    fake.set("getOrderStatusExtended.do", body)
    with pytest.raises(GatewayError):
        adapter.fetch_result(ref(), Journal())


def test_status_query_is_retried_once_after_a_5xx(adapter, fake):
    fake.set("getOrderStatusExtended.do", "oops", status=503)
    with pytest.raises(GatewayError):
        adapter.fetch_result(ref(), Journal())
    assert [m for m, _ in fake.requests] == ["getOrderStatusExtended.do"] * 2


def test_callback_with_the_published_checksum_is_accepted(adapter):
    example = fixture("checksum_examples.json")[0]
    form = {**example["params"], "checksum": example["checksum"]}
    notice = adapter.parse_callback("callback", form, Journal())
    assert notice.gateway_id == "06cf5599-3f17-7c86-bdbc-bd7d00a8b38b"
    assert notice.reference == "2003"
    assert notice.result is None  # even a signed callback is only a reason to ask


@pytest.mark.parametrize(
    "mangle",
    [
        lambda f: f.pop("checksum"),
        lambda f: f.update(checksum="0" * 64),
        lambda f: f.update(status="0"),  # a field changed after signing
        lambda f: f.update(checksum=f["checksum"].lower()[:-1]),
    ],
)
def test_callback_with_missing_or_wrong_checksum_is_refused(adapter, mangle):
    example = fixture("checksum_examples.json")[0]
    form = {**example["params"], "checksum": example["checksum"]}
    mangle(form)
    with pytest.raises(BadNotice) as refused:
        adapter.parse_callback("callback", form, Journal())
    assert refused.value.reference == "2003"


def test_malformed_return_is_refused(adapter):
    with pytest.raises(BadNotice):
        adapter.parse_return({"orderId": "<script>alert(1)</script>"})
    assert adapter.parse_return({"orderId": "abc-123", "lang": "en"}).gateway_id == "abc-123"


# Reversal of a one-phase payment -----------------------------------------------------------------
def reversed_status(**amounts) -> dict:
    """getOrderStatusExtended of a deposited one-phase order reversed before settlement."""
    return {
        "errorCode": "0",
        "errorMessage": "Success",
        "orderNumber": "7005",
        "orderStatus": 3,
        "actionCode": 0,
        "amount": 2000,
        "currency": "978",
        "attributes": [{"name": "mdOrder", "value": "01491d0b-c848-7dd6-a20d-e96900a7d8c0"}],
        "paymentAmountInfo": {
            "paymentState": "REVERSED",
            "approvedAmount": 2000,
            "depositedAmount": 0,
            "refundedAmount": 0,
            "totalAmount": 2000,
            **amounts,
        },
    }


def test_a_reversed_one_phase_payment_reads_voided_with_nothing_captured(adapter, fake):
    fake.set("reverse.do", {"errorCode": "0", "errorMessage": "Success"})
    fake.set("getOrderStatusExtended.do", reversed_status())
    result = adapter.void(ref(captured=2000), Journal())
    assert [m for m, _ in fake.requests] == ["reverse.do", "getOrderStatusExtended.do"]
    assert fake.requests[0][1]["orderId"] == "01491d0b-c848-7dd6-a20d-e96900a7d8c0"
    assert "amount" not in fake.requests[0][1]  # the whole payment, never a partial reversal
    assert result.outcome is Outcome.VOIDED
    assert (result.amount, result.captured, result.refunded) == (2000, 0, 0)


def test_a_reverse_refused_after_the_window_is_a_refusal(adapter, fake):
    refusal = {
        "errorCode": "7",
        "errorMessage": "Reverse is not possible: the payment was deposited more than 86400 "
        "seconds ago; refund it instead",
    }
    fake.set("reverse.do", refusal)
    with pytest.raises(GatewayRefused) as refused:
        adapter.void(ref(captured=2000), Journal())
    assert refused.value.code == "7" and "refund it instead" in str(refused.value)
    assert [m for m, _ in fake.requests] == ["reverse.do"]


def test_void_of_a_one_phase_payment_on_the_sandbox(sandbox):
    gateway = RbsGateway(
        url=f"{sandbox.url}/rbs/payment/rest/",
        username="sandbox-merchant",
        password="sandbox-password",
        callback_key="sandbox-callback-key",
        two_phase=False,
        connect_timeout=2,
        read_timeout=5,
    )
    paid = []
    for reference in ("7101_1", "7102_1"):
        redirect = gateway.start(payment_request(reference=reference), Journal())
        card = {"pan": "4111111111111111", "expiry": "12/34", "cvc": "123", "action": "pay"}
        requests.post(redirect.url, data=card, allow_redirects=False, timeout=10)
        paid.append(ref(reference=reference, gateway_id=redirect.gateway_id, captured=2000))
    assert gateway.fetch_result(paid[0], Journal()).outcome is Outcome.PAID
    voided = gateway.void(paid[0], Journal())
    assert voided.outcome is Outcome.VOIDED and voided.captured == 0
    sandbox.advance(24 * 3600 + 1)
    with pytest.raises(GatewayRefused) as refused:
        gateway.void(paid[1], Journal())
    assert refused.value.code == "7"
    assert gateway.fetch_result(paid[1], Journal()).outcome is Outcome.PAID
