"""The InterPay adapter against the live sandbox, and against the documented examples, over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask, request

from storefront.gateways.base import (
    AttemptRef,
    BadNotice,
    GatewayError,
    GatewayRefused,
    Journal,
    Line,
    Outcome,
    PaymentRequest,
    Redirect,
    Trigger,
)
from storefront.gateways.interpay import InterPayGateway
from tests.adapters import journal_text, records, settings
from tests.servers import serving

EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "interpay" / "examples.txt"
RETURN_URL = "https://shop.example/pay/interpay/return/tok-1"


def config(sandbox_url: str, **overrides) -> dict:
    values = {
        "INTERPAY_URL": f"{sandbox_url}/interpay/svra/ {sandbox_url}/interpay/svrb/",
        "INTERPAY_TERMID": "SANDBX01",
        "INTERPAY_PASS": "sandbox-pass",
        "INTERPAY_ACK": True,
        # The sandbox's terminal charges Canadian dollars, as a real one usually does.
        "INTERPAY_CURRENCY": "CAD",
        "GATEWAY_CONNECT_TIMEOUT": 2.0,
        "GATEWAY_READ_TIMEOUT": 5.0,
    }
    values.update(overrides)
    return settings(**values)


def from_config(config: dict) -> InterPayGateway:
    return InterPayGateway.from_config(config)


@pytest.fixture
def adapter(sandbox) -> InterPayGateway:
    return from_config(config(sandbox.url))


def payment_request(reference: str = "1000000101", **overrides) -> PaymentRequest:
    values = dict(
        reference=reference,
        order_number="10000001",
        amount=2000,
        currency="CAD",
        description="Order 10000001",
        email="ann@example.com",
        customer_name="Ann Example",
        country="CA",
        language="en",
        lines=(Line("Tea", 2, 1000),),
        return_url=RETURN_URL,
        fail_url=RETURN_URL,
    )
    values.update(overrides)
    return PaymentRequest(**values)


def ref(redirect: Redirect, reference: str = "1000000101", amount: int = 2000, **data):
    return AttemptRef(
        reference=reference,
        gateway_id=redirect.gateway_id,
        amount=amount,
        currency="CAD",
        data=data,
    )


def pay(redirect: Redirect, card: str = "4111111111111111", action: str = "pay") -> dict:
    """The customer on the hosted page; returns the query of the redirect back to the shop."""
    page = requests.get(redirect.url, timeout=10)
    assert page.status_code == 200 and "<form" in page.text
    form = {"card_number": card, "expiry": "12/39", "cvv": "123", "action": action}
    response = requests.post(redirect.url, data=form, timeout=10, allow_redirects=False)
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith(RETURN_URL + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def sessions(sandbox, requestid: str) -> list[dict]:
    return [s for s in sandbox.state().get("interpay_session", []) if s["requestid"] == requestid]


# The whole journey --------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["json", "legacy"])
def test_an_approved_payment_is_paid_once_acknowledged(sandbox, encoding):
    adapter = from_config(config(sandbox.url, INTERPAY_ENCODING=encoding))
    journal = Journal()
    redirect = adapter.start(payment_request(), journal)
    assert redirect.url.startswith(f"{sandbox.url}/interpay/api/HOSTPYMT/pay/?SecureID=")
    back = pay(redirect)

    notice = adapter.parse_return(back)
    assert (notice.trigger, notice.gateway_id, notice.kind) == (
        Trigger.RETURN,
        redirect.gateway_id,
        "5000",
    )
    held = adapter.fetch_result(ref(redirect), journal)
    assert held.outcome is Outcome.AUTHORIZED  # approved, reversed unless we Ack
    assert (held.amount, held.currency, held.reference, held.gateway_id) == (
        2000,
        "CAD",
        "1000000101",
        redirect.gateway_id,
    )
    assert held.masked_card == "****1111" and held.gateway_ref.startswith("T")
    assert held.data["refnum"] and "CODE=0000" in held.codes and "ACK=N" in held.codes
    assert adapter.acknowledges

    paid = adapter.acknowledge(ref(redirect, **held.data), journal)
    assert paid.outcome is Outcome.PAID
    assert (paid.amount, paid.captured, paid.currency, paid.gateway_id) == (
        2000,
        2000,
        "CAD",
        redirect.gateway_id,
    )
    assert "sandbox-pass" not in journal_text(journal)  # the evidence log never holds PASS
    assert sessions(sandbox, "1000000101")[0]["state"] == "captured"


def test_an_approval_never_acknowledged_is_voided_after_three_minutes(adapter, sandbox):
    redirect = adapter.start(payment_request(), Journal())
    pay(redirect)
    assert adapter.fetch_result(ref(redirect), Journal()).outcome is Outcome.AUTHORIZED
    sandbox.advance(181)
    voided = adapter.fetch_result(ref(redirect), Journal())
    assert voided.outcome is Outcome.VOIDED and "CODE=9008" in voided.codes
    assert adapter.acknowledge(ref(redirect), Journal()).outcome is Outcome.VOIDED


@pytest.mark.parametrize(
    "card,action,status,outcome",
    [
        ("4000000000000002", "pay", "5073", Outcome.DECLINED),
        ("4000000000009995", "pay", "5073", Outcome.DECLINED),
        ("4111111111111111", "cancel", "5071", Outcome.CANCELLED),
    ],
)
def test_declined_and_cancelled_payments(adapter, card, action, status, outcome):
    redirect = adapter.start(payment_request(), Journal())
    back = pay(redirect, card=card, action=action)
    assert adapter.parse_return(back).kind == status
    result = adapter.fetch_result(ref(redirect), Journal())
    assert result.outcome is outcome and result.message
    assert result.gateway_ref == ""


def test_a_customer_who_leaves_the_page_open_times_out(adapter, sandbox):
    redirect = adapter.start(payment_request(), Journal())
    sandbox.advance(901)
    result = adapter.fetch_result(ref(redirect), Journal())
    assert result.outcome is Outcome.EXPIRED and "CODE=9004" in result.codes


def test_an_early_poll_is_pending_and_a_second_cancels(adapter):
    redirect = adapter.start(payment_request(), Journal())
    assert adapter.fetch_result(ref(redirect), Journal()).outcome is Outcome.PENDING
    assert adapter.fetch_result(ref(redirect), Journal()).outcome is Outcome.CANCELLED


def test_an_early_poll_is_not_repeated_on_the_other_server(adapter, sandbox):
    redirect = adapter.start(payment_request(), Journal())
    journal = Journal()
    assert adapter.fetch_result(ref(redirect), journal).outcome is Outcome.PENDING
    assert [kind for kind, _, _ in records(journal)] == ["request", "response"]
    assert pay(redirect)["Status"] == "5000"  # the session is still open to the customer


def test_a_failure_return_without_secureid_is_still_a_trigger(adapter, sandbox):
    sandbox.arm("interpay", "return", "no_secureid")
    redirect = adapter.start(payment_request(), Journal())
    notice = adapter.parse_return(pay(redirect, action="cancel"))
    assert (notice.gateway_id, notice.kind) == (None, "5071")
    assert adapter.fetch_result(ref(redirect), Journal()).outcome is Outcome.CANCELLED


# Retries and fail-over ----------------------------------------------------------------------
def test_a_lost_start_session_answer_is_unknown_and_opens_no_second_session(sandbox):
    adapter = from_config(config(sandbox.url, GATEWAY_READ_TIMEOUT=0.5))
    # svra opens the session, then answers too late; svrb says the REQUESTID is taken.
    sandbox.arm("interpay", "svra:StartSession", "hang", seconds=2)
    journal = Journal()
    with pytest.raises(GatewayError):
        adapter.start(payment_request(), journal)
    assert len(sessions(sandbox, "1000000101")) == 1
    assert "DUPLICATE REQUESTID" in journal_text(journal)


def test_a_requestid_used_before_is_refused(adapter):
    adapter.start(payment_request(), Journal())
    with pytest.raises(GatewayRefused) as refused:
        adapter.start(payment_request(), Journal())
    assert refused.value.code == "9012"


@pytest.mark.parametrize(
    "fault,params",
    [("system_error", {}), ("system_error", {"code": "9101"}), ("http_503", {}), ("http_500", {})],
)
def test_start_session_fails_over_to_svrb(adapter, sandbox, fault, params):
    sandbox.arm("interpay", "svra:StartSession", fault, **params)
    redirect = adapter.start(payment_request(), Journal())
    [session] = sessions(sandbox, "1000000101")
    assert session["server"] == "svrb" and session["secureid"] == redirect.gateway_id


@pytest.mark.parametrize("fault", ["system_error", "http_503"])
def test_get_result_fails_over_to_svrb(adapter, sandbox, fault):
    redirect = adapter.start(payment_request(), Journal())
    pay(redirect)
    sandbox.arm("interpay", "svra:GetResult", fault)
    assert adapter.fetch_result(ref(redirect), Journal()).outcome is Outcome.AUTHORIZED


def test_one_server_is_tried_twice(sandbox):
    adapter = from_config(config(sandbox.url, INTERPAY_URL=f"{sandbox.url}/interpay/svrb/"))
    sandbox.arm("interpay", "svrb:StartSession", "http_503")
    assert adapter.start(payment_request(), Journal()).gateway_id


def test_both_servers_failing_is_unknown(adapter, sandbox):
    redirect = adapter.start(payment_request(), Journal())
    sandbox.arm("interpay", "svra:GetResult", "system_error")
    sandbox.arm("interpay", "svrb:GetResult", "http_503")
    with pytest.raises(GatewayError):
        adapter.fetch_result(ref(redirect), Journal())


@pytest.mark.parametrize("fault", ["html", "garbage", "http_400"])
def test_an_unreadable_answer_is_unknown(adapter, sandbox, fault):
    redirect = adapter.start(payment_request(), Journal())
    pay(redirect)
    sandbox.arm("interpay", "svra:GetResult", fault)
    with pytest.raises(GatewayError):
        adapter.fetch_result(ref(redirect), Journal())


def test_the_processing_failure_card_is_unknown_then_declined(adapter):
    redirect = adapter.start(payment_request(), Journal())
    assert pay(redirect, card="4000000000000119")["Status"] == "9100"
    with pytest.raises(GatewayError):  # 9100 from both servers: never "failed" on that
        adapter.fetch_result(ref(redirect), Journal())
    assert adapter.fetch_result(ref(redirect), Journal()).outcome is Outcome.DECLINED


# Settings ----------------------------------------------------------------------------------
def test_a_terminal_without_ack_is_paid_at_once(sandbox):
    sandbox.settings(**{"interpay:ack_required": False})
    adapter = from_config(config(sandbox.url, INTERPAY_ACK=False))
    redirect = adapter.start(payment_request(), Journal())
    pay(redirect)
    assert adapter.fetch_result(ref(redirect), Journal()).outcome is Outcome.PAID
    assert adapter.acknowledge(ref(redirect), Journal()) is None
    assert not adapter.acknowledges


def test_ack_in_get_result_is_paid_in_one_call(sandbox):
    adapter = from_config(config(sandbox.url, INTERPAY_ACK_IN_GETRESULT="true"))
    redirect = adapter.start(payment_request(), Journal())
    pay(redirect)
    result = adapter.fetch_result(ref(redirect), Journal())
    assert result.outcome is Outcome.PAID and "ACK=Y" in result.codes
    assert adapter.acknowledge(ref(redirect), Journal()) is None


def test_amounts_go_with_two_decimals_even_to_a_strict_terminal(adapter, sandbox):
    sandbox.settings(**{"interpay:amount_mode": "strict"})
    redirect = adapter.start(payment_request(amount=500), Journal())
    pay(redirect)
    assert adapter.fetch_result(ref(redirect, amount=500), Journal()).amount == 500
    [session] = sessions(sandbox, "1000000101")
    assert session["amount"] == 500  # "5.00", never "500" (which a cents terminal reads as $5)


def test_a_currency_other_than_the_terminals_is_refused(adapter, sandbox):
    with pytest.raises(GatewayRefused):
        adapter.start(payment_request(currency="EUR"), Journal())
    assert sessions(sandbox, "1000000101") == []


def test_the_terminal_currency_is_a_setting(sandbox):
    adapter = from_config(config(sandbox.url, INTERPAY_CURRENCY="usd"))
    redirect = adapter.start(payment_request(currency="USD"), Journal())
    pay(redirect)
    assert adapter.fetch_result(ref(redirect), Journal()).currency == "USD"


def test_wrong_credentials_are_a_refusal(sandbox):
    adapter = from_config(config(sandbox.url, INTERPAY_PASS="wrong"))
    with pytest.raises(GatewayRefused) as refused:
        adapter.start(payment_request(), Journal())
    assert refused.value.code == "9022"


def test_access_denied_on_get_result_is_unknown_not_a_decline(adapter, sandbox):
    redirect = adapter.start(payment_request(), Journal())
    pay(redirect)
    sandbox.arm("interpay", "GetResult", "ip_denied")
    with pytest.raises(GatewayError):
        adapter.fetch_result(ref(redirect), Journal())


def test_backslashes_and_long_texts_are_cleaned(adapter, sandbox):
    request_ = payment_request(
        description="Order\\10000001 " + "x" * 80, customer_name="A" * 50, language="fr"
    )
    adapter.start(request_, Journal())
    [session] = sessions(sandbox, "1000000101")
    assert "\\" not in session["desc"] and len(session["desc"]) == 60
    assert len(session["custname"]) == 40 and session["lang"] == "F"


# Back office ---------------------------------------------------------------------------------
def test_capture_is_an_ack_of_the_full_amount(adapter):
    redirect = adapter.start(payment_request(), Journal())
    pay(redirect)
    with pytest.raises(GatewayRefused):
        adapter.capture(ref(redirect), 1000, Journal())
    assert adapter.capture(ref(redirect), 2000, Journal()).outcome is Outcome.PAID


def test_void_reverses_the_authorization(adapter):
    redirect = adapter.start(payment_request(), Journal())
    pay(redirect)
    assert adapter.void(ref(redirect), Journal()).outcome is Outcome.VOIDED


def test_ack_by_refnum_when_no_secureid_is_known(adapter):
    redirect = adapter.start(payment_request(), Journal())
    pay(redirect)
    refnum = adapter.fetch_result(ref(redirect), Journal()).data["refnum"]
    attempt = AttemptRef(
        reference="1000000101",
        gateway_id=None,
        amount=2000,
        currency="CAD",
        data={"refnum": refnum},
    )
    assert adapter.void(attempt, Journal()).outcome is Outcome.VOIDED


def test_there_is_no_refund_message(adapter):
    assert adapter.supports_refund is False
    with pytest.raises(GatewayRefused):
        adapter.refund(AttemptRef("1000000101", "abc", 2000, "CAD"), 2000, Journal())


# Browser returns and references ------------------------------------------------------------
def test_returns_are_read_in_any_case_and_decide_nothing(adapter):
    notice = adapter.parse_return({"secureid": "4s1py8fhq2n7w0k3m5xz", "STATUS": "5000"})
    assert (notice.gateway_id, notice.kind, notice.result) == ("4s1py8fhq2n7w0k3m5xz", "5000", None)
    assert adapter.parse_return({"Status": "5071"}).gateway_id is None


@pytest.mark.parametrize(
    "args",
    [
        {"SecureID": "x' or 1=1", "Status": "5000"},
        {"SecureID": "a" * 65},
        {"SecureID": "abc", "Status": "ok"},
    ],
)
def test_malformed_returns_are_refused(adapter, args):
    with pytest.raises(BadNotice):
        adapter.parse_return(args)


def test_there_are_no_callbacks(adapter):
    with pytest.raises(BadNotice):
        adapter.parse_callback("notification", {"SecureID": "abc"}, Journal())


def test_references_are_digits_unique_per_attempt(adapter):
    refs = {adapter.reference_for("10000001", seq) for seq in range(1, 100)}
    assert len(refs) == 99 and all(r.isdigit() and 5 <= len(r) <= 20 for r in refs)
    assert adapter.reference_for("10000001", 1) == "1000000101"
    assert adapter.reference_for("7", 3) == "00703"


# The documented examples, from a loopback server ---------------------------------------------
def examples() -> dict[str, str]:
    """examples.txt: each ``# title`` line names the line below it."""
    found, title = {}, None
    for line in EXAMPLES.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("# ").split(" (")[0]
        elif line.strip() and title:
            found[title] = line.strip()
    return found


class DocumentedGateway:
    """Answers each ACTION with its documented reply, in the encoding it was asked in."""

    def __init__(self):
        self.answers: dict[str, str] = {}
        self.received: list[tuple[str, dict, str]] = []
        self.app = Flask("documented_interpay")
        self.app.add_url_rule("/", view_func=self.answer, methods=["POST"])

    def answer(self):
        raw = request.get_data(as_text=True)
        if request.is_json:
            fields = request.get_json()
        else:
            fields = {k: v[0] for k, v in parse_qs(raw).items()}
        self.received.append((fields["ACTION"], fields, raw))
        text = self.answers[fields["ACTION"]]
        if request.is_json:
            body = dict(part.partition("=")[::2] for part in text.split("&"))
            return json.dumps(body), 200, {"Content-Type": "application/json"}
        return text, 200, {"Content-Type": "text/plain"}


@pytest.fixture(params=["json", "legacy"])
def documented(request):
    gateway = DocumentedGateway()
    with serving(gateway.app) as server:
        gateway.adapter = InterPayGateway(
            urls=[server.url + "/"],
            termid="TERM0001",
            password="s3cret-pass",
            ack=True,
            ack_in_getresult=False,
            currency="CAD",
            encoding=request.param,
            connect_timeout=2,
            read_timeout=2,
        )
        gateway.encoding = request.param
        yield gateway


def test_the_documented_start_session_reply(documented):
    documented.answers["StartSession"] = examples()["StartSession reply"]
    journal = Journal()
    redirect = documented.adapter.start(payment_request("12345678", amount=12525), journal)
    assert redirect.gateway_id == "4s1py8fhq2n7w0k3m5xz"
    assert redirect.url == (
        "https://payment.interpaypos.com/api/HOSTPYMT/pay/?SecureID=4s1py8fhq2n7w0k3m5xz"
    )
    action, fields, raw = documented.received[0]
    assert action == "StartSession" and fields["AMT"] == "125.25"
    assert (fields["TYPE"], fields["REQUESTID"], fields["SUCCESSURL"]) == (
        "W",
        "12345678",
        RETURN_URL,
    )
    assert "CURRENCY" not in fields and "SECUREID" not in fields
    assert raw.lstrip('{"').startswith("TERMID")  # TERMID is the first field
    assert "s3cret-pass" not in journal_text(journal)


def test_the_documented_browser_return(documented):
    url = examples()["Browser return to SUCCESSURL"]
    notice = documented.adapter.parse_return(
        {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    )
    assert (notice.gateway_id, notice.kind) == ("4s1py8fhq2n7w0k3m5xz", "5000")


def test_the_documented_get_result_reply(documented):
    documented.answers["GetResult"] = examples()["GetResult reply"]
    attempt = AttemptRef("12345678", "4s1py8fhq2n7w0k3m5xz", 12525, "CAD")
    journal = Journal()
    result = documented.adapter.fetch_result(attempt, journal)
    assert result.outcome is Outcome.PAID  # ACK=Y: acknowledged in the same call
    assert (result.amount, result.currency, result.reference, result.gateway_id) == (
        12525,
        "CAD",
        "12345678",
        "4s1py8fhq2n7w0k3m5xz",
    )
    assert result.gateway_ref == "T63237" and result.data == {"refnum": "2725955812345678"}
    assert result.codes == "CODE=0000 TEXT=APPROVED ACK=Y"
    assert "5165BBSPWXY36228" not in journal_text(journal)  # the card token stays out of the log
    assert documented.received[0][1]["SECUREID"] == "4s1py8fhq2n7w0k3m5xz"


def test_the_documented_ack_reply(documented):
    documented.answers["Ack"] = examples()["Ack reply"]
    documented.answers["GetResult"] = examples()["GetResult reply"]
    attempt = AttemptRef("12345678", "4s1py8fhq2n7w0k3m5xz", 12525, "CAD")
    result = documented.adapter.acknowledge(attempt, Journal())
    assert result.outcome is Outcome.PAID and result.amount == 12525
    sent = documented.received[0][1]
    assert (sent["ACTION"], sent["SECUREID"], sent["ACK"]) == ("Ack", "4s1py8fhq2n7w0k3m5xz", "Y")


def test_the_documented_early_poll_reply(documented):
    documented.answers["GetResult"] = examples()["Error reply"]
    attempt = AttemptRef("12345678", "4s1py8fhq2n7w0k3m5xz", 12525, "CAD")
    assert documented.adapter.fetch_result(attempt, Journal()).outcome is Outcome.PENDING
    assert len(documented.received) == 1  # 9015 is never repeated at once
