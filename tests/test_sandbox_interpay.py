"""The sandbox's InterPay Web-Redirect, spoken to over HTTP with raw requests and literal values."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from sandbox import create_app as create_sandbox
from tests.servers import serving

RETURN_URL = "https://shop.example/pay/interpay/return/tok-1"
FAIL_URL = "https://shop.example/pay/interpay/fail/tok-1?lang=en"
VISA, MASTERCARD, AMEX = "4111111111111111", "5555555555554444", "378282246310005"
DECLINED, NO_FUNDS, PROCESSING_FAILS = "4000000000000002", "4000000000009995", "4000000000000119"


def pairs(text: str) -> dict[str, str]:
    return dict(part.partition("=")[::2] for part in text.split("&"))


def call(sandbox, fields: dict, server: str = "svra", encoding: str = "json") -> dict:
    """One API call; the reply as a dict, whatever its encoding."""
    url = f"{sandbox.url}/interpay/{server}/"
    if encoding == "json":
        response = requests.post(url, json=fields, timeout=10)
        assert response.headers["Content-Type"].startswith("application/json")
        return response.json()
    if encoding == "body":
        response = requests.post(url, data=urlencode(fields), timeout=10)
    else:  # the string as the URL tail
        response = requests.get(url + urlencode(fields), timeout=10)
    assert response.headers["Content-Type"].startswith("text/plain")
    return pairs(response.text)


def session_fields(requestid: str = "1000000101", **extra) -> dict:
    fields = {
        "TERMID": "SANDBX01",
        "PASS": "sandbox-pass",
        "TYPE": "W",
        "ACTION": "StartSession",
        "AMT": "20.00",
        "REQUESTID": requestid,
        "CUSTEMAIL": "ann@example.com",
        "CUSTNAME": "Ann Example",
        "DESC": "Order 10000001",
        "SUCCESSURL": RETURN_URL,
        "FAILUREURL": FAIL_URL,
        "LANG": "E",
    }
    fields.update(extra)
    return {k: v for k, v in fields.items() if v is not None}


def start(sandbox, requestid: str = "1000000101", server: str = "svra", **extra) -> dict:
    reply = call(sandbox, session_fields(requestid, **extra), server)
    assert reply["CODE"] == "0000", reply
    return reply


def get_result(sandbox, secureid: str, server: str = "svra", **extra) -> dict:
    fields = {
        "TERMID": "SANDBX01",
        "PASS": "sandbox-pass",
        "TYPE": "W",
        "ACTION": "GetResult",
        "SECUREID": secureid,
        **extra,
    }
    return call(sandbox, fields, server)


def ack(sandbox, flag: str = "Y", server: str = "svra", **ids) -> dict:
    fields = {
        "TERMID": "SANDBX01",
        "PASS": "sandbox-pass",
        "TYPE": "W",
        "ACTION": "Ack",
        **ids,
        "ACK": flag,
    }
    return call(sandbox, fields, server)


def pay(url: str, card: str = VISA, action: str = "pay") -> requests.Response:
    """What a cardholder does on the hosted page: look at it, then Pay or Cancel."""
    page = requests.get(url, timeout=10, allow_redirects=False)
    assert page.status_code == 200
    form = {
        "card_number": card,
        "expiry": "12/39",
        "cvv": "123",
        "cardholder": "Ann Example",
        "action": action,
    }
    return requests.post(url, data=form, timeout=10, allow_redirects=False)


def returned(response: requests.Response) -> tuple[str, dict[str, str]]:
    assert response.status_code == 303
    location = response.headers["Location"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    return location, query


def sessions(sandbox) -> list[dict]:
    return sandbox.state().get("interpay_session", [])


# StartSession ------------------------------------------------------------------------------
def test_start_session_answers_a_secureid_and_the_hosted_page(sandbox):
    reply = start(sandbox)
    assert re.fullmatch(r"[a-z0-9]{20}", reply["SECUREID"])
    assert reply["TEXT"] == "SUCCESS"
    assert reply["URL"] == f"{sandbox.url}/interpay/api/HOSTPYMT/pay/?SecureID={reply['SECUREID']}"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", reply["DATE"])
    assert re.fullmatch(r"\d{2}:\d{2}:\d{2}", reply["TIME"]) and float(reply["DUR"]) >= 0


@pytest.mark.parametrize("encoding", ["body", "tail"])
def test_the_string_encoding_in_body_or_url_tail_gets_a_string_reply(sandbox, encoding):
    # A "?" and "&" inside SUCCESSURL travel percent-encoded and arrive intact.
    success = "https://shop.example/back?order=1&x=2"
    reply = call(sandbox, session_fields(SUCCESSURL=success), encoding=encoding)
    assert reply["CODE"] == "0000" and reply["TEXT"] == "SUCCESS"
    assert reply["URL"].endswith(f"/interpay/api/HOSTPYMT/pay/?SecureID={reply['SECUREID']}")
    location, query = returned(pay(reply["URL"]))
    assert location.startswith("https://shop.example/back?order=1&x=2&SecureID=")


def test_the_string_reply_is_name_value_text_as_documented(sandbox):
    response = requests.post(
        f"{sandbox.url}/interpay/svrb/", data=urlencode(session_fields()), timeout=10
    )
    assert re.match(r"^TEXT=SUCCESS&CODE=0000&SECUREID=[a-z0-9]{20}&URL=http", response.text)


def test_the_string_form_wants_termid_first(sandbox):
    fields = session_fields()
    fields = {"PASS": fields.pop("PASS"), **fields}
    assert call(sandbox, fields, encoding="body")["CODE"] == "9001"
    assert sessions(sandbox) == []


def test_a_trailing_json_token_asks_for_a_json_reply(sandbox):
    response = requests.post(
        f"{sandbox.url}/interpay/svra/", data=urlencode(session_fields()) + "&JSON", timeout=10
    )
    assert response.json()["CODE"] == "0000"


@pytest.mark.parametrize(
    "change,code",
    [
        ({"TERMID": "OTHER001"}, "1001"),
        ({"PASS": "wrong"}, "9022"),
        ({"PASS": "SANDBOX-PASS"}, "9022"),  # PASS is case-sensitive
        ({"TYPE": "S"}, "9001"),
        ({"ACTION": "Refund"}, "9010"),
        ({"REQUESTID": None}, "9011"),
        ({"REQUESTID": "12a45"}, "9011"),
        ({"AMT": "12.345"}, "9024"),
        ({"AMT": "twelve"}, "9024"),
        ({"AMT": "-1.00"}, "9024"),
        ({"CUSTEMAIL": None}, "9014"),
        ({"CUSTEMAIL": "not-an-email"}, "9014"),
        ({"CUSTEMAIL": "a" * 60 + "@example.com"}, "9014"),
        ({"REFNUM": "bad!ref"}, "9013"),
        ({"SECUREID": "abcdefghij0123456789"}, "9001"),
        ({"DESC": "C:\\orders"}, "9001"),
        ({"DESC": "x" * 61}, "9001"),
        ({"LANG": "D"}, "9001"),
        ({"SUCCESSURL": "javascript:alert(1)"}, "9001"),
        ({"SCHEDID": "42", "CUSTNAME": None}, "9016"),
    ],
)
def test_start_session_refuses_with_the_documented_codes(sandbox, change, code):
    reply = call(sandbox, session_fields(**change))
    assert reply["CODE"] == code
    assert sessions(sandbox) == []


def test_a_requestid_is_used_once_per_terminal_on_either_server(sandbox):
    first = start(sandbox, "1000000101")
    again = call(sandbox, session_fields("1000000101"), "svrb")
    assert (again["CODE"], again["TEXT"]) == ("9012", "DUPLICATE REQUESTID")
    assert "SECUREID" not in again
    start(sandbox, "1000000102", "svrb")
    assert [s["secureid"] for s in sessions(sandbox) if s["requestid"] == "1000000101"] == [
        first["SECUREID"]
    ]


def test_a_given_refnum_is_unique_and_kept(sandbox):
    reply = start(sandbox, REFNUM="ORDER-10000001")
    assert call(sandbox, session_fields("1000000102", REFNUM="ORDER-10000001"))["CODE"] == "9013"
    returned(pay(reply["URL"]))
    assert get_result(sandbox, reply["SECUREID"])["REFNUM"] == "ORDER-10000001"


@pytest.mark.parametrize(
    "amt,paid",
    [("20.00", "20.00"), ("5.", "5.00"), ("500", "5.00"), ("5", "0.05"), ("0.5", "0.50")],
)
def test_integers_are_cents_by_default(sandbox, amt, paid):
    reply = start(sandbox, AMT=amt)
    returned(pay(reply["URL"]))
    assert get_result(sandbox, reply["SECUREID"])["AMT"] == paid


def test_strict_amount_mode_wants_a_decimal_point(sandbox):
    sandbox.settings(**{"interpay:amount_mode": "strict"})
    assert call(sandbox, session_fields(AMT="500"))["CODE"] == "9024"
    assert call(sandbox, session_fields(AMT="5."))["CODE"] == "0000"


def test_url_overrides_are_refused_without_dynamic_urls(sandbox):
    sandbox.settings(**{"interpay:dynamic_url": False})
    reply = call(sandbox, session_fields())
    assert (reply["CODE"], reply["TEXT"]) == ("9001", "CANNOT OVERRIDE URLS")


def test_json_replies_to_unreadable_json_with_an_input_error(sandbox):
    response = requests.post(
        f"{sandbox.url}/interpay/svra/",
        data="{not json",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.json()["CODE"] == "9001"


# The hosted page ---------------------------------------------------------------------------
class PageParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.inputs, self.labels, self.handlers = [], [], set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self.handlers += [name for name in attrs if name.startswith("on")]
        if tag == "input":
            self.inputs.append(attrs.get("id"))
        if tag == "label":
            self.labels.add(attrs.get("for"))


def test_the_hosted_page_is_a_labelled_form_without_javascript(sandbox):
    reply = start(sandbox)
    page = requests.get(reply["URL"], timeout=10)
    parser = PageParser()
    parser.feed(page.text)
    assert "script" not in parser.tags and parser.handlers == []
    assert parser.inputs and set(parser.inputs) <= parser.labels
    assert "20.00" in page.text and "Cancel" in page.text
    for card in (VISA, MASTERCARD, AMEX, DECLINED, NO_FUNDS, PROCESSING_FAILS):
        assert card in page.text  # the test-card table


def test_an_unknown_secureid_has_no_page(sandbox):
    page = requests.get(
        f"{sandbox.url}/interpay/api/HOSTPYMT/pay/?SecureID=nosuchsession0000000", timeout=10
    )
    assert page.status_code == 404


def test_a_card_number_that_fails_luhn_is_an_error_on_the_page(sandbox):
    reply = start(sandbox)
    response = pay(reply["URL"], card="4111111111111112")
    assert response.status_code == 422 and 'role="alert"' in response.text
    assert get_result(sandbox, reply["SECUREID"])["CODE"] == "9015"  # still open


def test_approval_returns_to_successurl_with_secureid_and_status(sandbox):
    reply = start(sandbox)
    location, query = returned(pay(reply["URL"]))
    assert location == f"{RETURN_URL}?SecureID={reply['SECUREID']}&Status=5000"


@pytest.mark.parametrize(
    "card,action,status,code",
    [
        (DECLINED, "pay", "5073", "0005"),
        (NO_FUNDS, "pay", "5073", "0051"),
        (VISA, "cancel", "5071", "9005"),
    ],
)
def test_failures_return_to_failureurl_with_their_status(sandbox, card, action, status, code):
    reply = start(sandbox)
    location, query = returned(pay(reply["URL"], card=card, action=action))
    # FAILUREURL has a query already: the parameters are joined with "&".
    assert location == f"{FAIL_URL}&SecureID={reply['SECUREID']}&Status={status}"
    result = get_result(sandbox, reply["SECUREID"])
    assert result["CODE"] == code and result["ACK"] == "N"
    assert ack(sandbox, SECUREID=reply["SECUREID"])["CODE"] == "9007"


def test_failureurl_defaults_to_successurl(sandbox):
    reply = start(sandbox, FAILUREURL=None)
    location, _ = returned(pay(reply["URL"], action="cancel"))
    assert location == f"{RETURN_URL}?SecureID={reply['SECUREID']}&Status=5071"


def test_a_failure_return_can_lack_the_secureid(sandbox):
    sandbox.arm("interpay", "return", "no_secureid")
    reply = start(sandbox)
    location, query = returned(pay(reply["URL"], action="cancel"))
    assert query == {"lang": "en", "Status": "5071"}


def test_a_page_left_open_times_out(sandbox):
    reply = start(sandbox)
    sandbox.advance(901)
    assert get_result(sandbox, reply["SECUREID"])["CODE"] == "9004"
    response = requests.get(reply["URL"], timeout=10, allow_redirects=False)
    location, query = returned(response)
    assert query["Status"] == "5050" and query["SecureID"] == reply["SECUREID"]


def test_the_page_timeout_is_a_setting(sandbox):
    sandbox.settings(**{"interpay:page_timeout": 60})
    reply = start(sandbox)
    sandbox.advance(61)
    # The customer clicks Pay on a page that has timed out meanwhile.
    form = {"card_number": VISA, "expiry": "12/39", "cvv": "123", "action": "pay"}
    response = requests.post(reply["URL"], data=form, timeout=10, allow_redirects=False)
    location, query = returned(response)
    assert query["Status"] == "5050"
    assert get_result(sandbox, reply["SECUREID"])["CODE"] == "9004"


def test_a_finished_page_shows_the_result_and_the_way_back(sandbox):
    reply = start(sandbox)
    returned(pay(reply["URL"]))
    again = requests.get(reply["URL"], timeout=10)
    assert again.status_code == 200 and "<form" not in again.text
    assert f"SecureID={reply['SECUREID']}&amp;Status=5000" in again.text


def test_a_page_under_a_path_prefix_links_under_it():
    wrapped = DispatcherMiddleware(lambda e, s: [], {"/sandbox": create_sandbox()})
    with serving(wrapped) as server:
        url = f"{server.url}/sandbox/interpay/svra/"
        reply = pairs(requests.get(url + urlencode(session_fields()), timeout=10).text)
        assert reply["URL"] == (
            f"{server.url}/sandbox/interpay/api/HOSTPYMT/pay/?SecureID={reply['SECUREID']}"
        )
        assert requests.get(reply["URL"], timeout=10).status_code == 200


# GetResult ---------------------------------------------------------------------------------
@pytest.mark.parametrize("card,cardtype", [(VISA, "V"), (MASTERCARD, "M"), (AMEX, "A")])
def test_get_result_answers_the_full_field_set(sandbox, card, cardtype):
    reply = start(sandbox)
    returned(pay(reply["URL"], card=card))
    result = get_result(sandbox, reply["SECUREID"])
    assert {
        "CODE",
        "TEXT",
        "SECUREID",
        "CARDTYPE",
        "AUTH",
        "AMT",
        "REQUESTID",
        "REFNUM",
        "ACK",
        "TOKEN",
        "CARDMASK",
        "CARDEXP",
        "DATE",
        "TIME",
        "DUR",
    } <= set(result)
    assert (result["CODE"], result["TEXT"], result["ACK"]) == ("0000", "APPROVED", "N")
    assert (result["SECUREID"], result["AMT"], result["REQUESTID"]) == (
        reply["SECUREID"],
        "20.00",
        "1000000101",
    )
    assert result["CARDTYPE"] == cardtype and result["CARDMASK"] == "****" + card[-4:]
    assert result["CARDEXP"] == "12/39" and re.fullmatch(r"[A-Za-z0-9/-]{8,40}", result["REFNUM"])


def test_get_result_in_the_string_encoding(sandbox):
    reply = start(sandbox)
    returned(pay(reply["URL"]))
    fields = {
        "TERMID": "SANDBX01",
        "PASS": "sandbox-pass",
        "TYPE": "W",
        "ACTION": "GetResult",
        "SECUREID": reply["SECUREID"],
    }
    result = call(sandbox, fields, "svrb", encoding="tail")
    assert (result["CODE"], result["AMT"], result["ACK"]) == ("0000", "20.00", "N")


def test_an_early_poll_is_refused_and_a_second_cancels_the_session(sandbox):
    reply = start(sandbox)
    first = get_result(sandbox, reply["SECUREID"])
    assert (first["CODE"], first["TEXT"]) == ("9015", "NO RESULT - DO NOT POLL")
    second = get_result(sandbox, reply["SECUREID"], "svrb")
    assert (second["CODE"], second["TEXT"]) == ("9015", "CANCELLED SEQ")
    # The customer can no longer pay on that session.
    page = requests.get(reply["URL"], timeout=10)
    assert "<form" not in page.text
    assert ack(sandbox, SECUREID=reply["SECUREID"])["CODE"] == "9007"


def test_an_unknown_or_foreign_secureid_is_9006(sandbox):
    assert get_result(sandbox, "nosuchsession0000000")["CODE"] == "9006"
    assert get_result(sandbox, "../etc")["CODE"] == "9006"
    assert ack(sandbox, SECUREID="nosuchsession0000000")["CODE"] == "9006"


def test_get_result_with_ack_captures_in_the_same_call(sandbox):
    reply = start(sandbox)
    returned(pay(reply["URL"]))
    assert get_result(sandbox, reply["SECUREID"], ACK="Y")["ACK"] == "Y"
    sandbox.advance(181)
    result = get_result(sandbox, reply["SECUREID"])
    assert (result["CODE"], result["ACK"]) == ("0000", "Y")


def test_the_processing_failure_card_answers_9100_then_not_completed(sandbox):
    reply = start(sandbox)
    location, query = returned(pay(reply["URL"], card=PROCESSING_FAILS))
    assert query["Status"] == "9100"
    codes = [
        get_result(sandbox, reply["SECUREID"], server)["CODE"]
        for server in ("svra", "svrb", "svra")
    ]
    assert codes == ["9100", "9100", "9007"]


# Ack ---------------------------------------------------------------------------------------
def test_ack_within_the_window_captures(sandbox):
    reply = start(sandbox)
    returned(pay(reply["URL"]))
    sandbox.advance(170)
    answer = ack(sandbox, SECUREID=reply["SECUREID"])
    assert (answer["CODE"], answer["TEXT"]) == ("0000", "CAPTURED")
    assert set(answer) == {"CODE", "TEXT", "DATE", "TIME", "DUR"}
    assert ack(sandbox, SECUREID=reply["SECUREID"], server="svrb")["CODE"] == "0000"
    sandbox.advance(600)
    assert get_result(sandbox, reply["SECUREID"])["ACK"] == "Y"


def test_ack_by_refnum(sandbox):
    reply = start(sandbox)
    returned(pay(reply["URL"]))
    refnum = get_result(sandbox, reply["SECUREID"])["REFNUM"]
    assert ack(sandbox, REFNUM=refnum)["CODE"] == "0000"
    assert ack(sandbox, REFNUM="NOSUCHREF1")["CODE"] == "9013"
    assert ack(sandbox)["CODE"] == "9021"


def test_an_approval_never_acknowledged_is_reversed_after_the_window(sandbox):
    reply = start(sandbox)
    returned(pay(reply["URL"]))
    sandbox.advance(181)
    result = get_result(sandbox, reply["SECUREID"])
    assert (result["CODE"], result["TEXT"], result["ACK"]) == ("9008", "REVERSED", "N")
    assert ack(sandbox, SECUREID=reply["SECUREID"])["CODE"] == "9008"
    state = {s["secureid"]: s for s in sessions(sandbox)}
    assert state[reply["SECUREID"]]["state"] == "reversed"  # the sweep did it, not the query


def test_ack_n_reverses_at_once(sandbox):
    reply = start(sandbox)
    returned(pay(reply["URL"]))
    answer = ack(sandbox, "N", SECUREID=reply["SECUREID"])
    assert (answer["CODE"], answer["TEXT"]) == ("9008", "REVERSED")
    assert ack(sandbox, SECUREID=reply["SECUREID"])["CODE"] == "9008"


def test_ack_before_the_page_finishes_does_not_cancel(sandbox):
    reply = start(sandbox)
    assert ack(sandbox, SECUREID=reply["SECUREID"])["CODE"] == "9015"
    location, query = returned(pay(reply["URL"]))
    assert query["Status"] == "5000"


def test_a_terminal_without_ack_captures_at_once(sandbox):
    sandbox.settings(**{"interpay:ack_required": False})
    reply = start(sandbox)
    returned(pay(reply["URL"]))
    sandbox.advance(600)
    result = get_result(sandbox, reply["SECUREID"])
    assert (result["CODE"], result["ACK"]) == ("0000", "Y")


# Faults, per server ------------------------------------------------------------------------
def test_a_fault_armed_on_one_server_leaves_the_other_alone(sandbox):
    sandbox.arm("interpay", "svra:StartSession", "http_503")
    response = requests.post(f"{sandbox.url}/interpay/svra/", json=session_fields(), timeout=10)
    assert response.status_code == 503
    assert call(sandbox, session_fields(), "svrb")["CODE"] == "0000"


def test_a_system_error_is_answered_without_processing(sandbox):
    sandbox.arm("interpay", "svra:StartSession", "system_error")
    reply = call(sandbox, session_fields())
    assert reply["CODE"] == "9100"
    assert sessions(sandbox) == []
    assert call(sandbox, session_fields(), "svrb")["CODE"] == "0000"


def test_ip_denied_is_1001(sandbox):
    sandbox.arm("interpay", "StartSession", "ip_denied")
    assert call(sandbox, session_fields(), "svrb")["CODE"] == "1001"


def test_a_hung_call_was_processed_all_the_same(sandbox):
    sandbox.arm("interpay", "svra:StartSession", "hang", seconds=1.5)
    with pytest.raises(requests.Timeout):
        requests.post(f"{sandbox.url}/interpay/svra/", json=session_fields(), timeout=(2, 0.3))
    assert call(sandbox, session_fields(), "svrb")["CODE"] == "9012"
    assert len(sessions(sandbox)) == 1


def test_html_instead_of_an_answer(sandbox):
    sandbox.arm("interpay", "svrb:GetResult", "html")
    response = requests.post(
        f"{sandbox.url}/interpay/svrb/",
        json={
            "TERMID": "SANDBX01",
            "PASS": "sandbox-pass",
            "TYPE": "W",
            "ACTION": "GetResult",
            "SECUREID": "abcdefghij0123456789",
        },
        timeout=10,
    )
    assert response.status_code == 200 and response.text.startswith("<!doctype html>")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


@pytest.mark.parametrize(
    ("lang", "html_lang", "heading", "cancel"),
    [("E", "en", "Payment", "Cancel"), ("F", "fr", "Paiement", "Annuler")],
)
def test_the_hosted_page_is_in_english_or_french_as_lang_asks(
    sandbox, lang, html_lang, heading, cancel
):
    reply = start(sandbox, LANG=lang)
    page = requests.get(reply["URL"], timeout=10).text
    assert f'<html lang="{html_lang}">' in page
    assert f"<h1>{heading}</h1>" in page and f">{cancel}</button>" in page
