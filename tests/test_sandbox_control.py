"""The sandbox's control API answers only the holder of its token, and its public pages show
one payment each: nothing a visitor of a demo with the sandbox mounted could use against
another customer's order."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from sandbox import create_app as create_sandbox
from tests.conftest import CONTROL_TOKEN
from tests.servers import serving

HEADER = "X-Sandbox-Control"
FAULT = {"gateway": "rbs", "op": "getOrderStatusExtended", "fault": "status", "count": 5}
RBS_LOGIN = {"userName": "sandbox-merchant", "password": "sandbox-password"}
ALTAPAY_LOGIN = ("sandbox-api", "sandbox-password")


def controls(url: str, headers: dict) -> list[requests.Response]:
    """One call of every control endpoint, each with ``headers``."""
    calls = [
        ("GET", "/__state", None),
        ("POST", "/__reset", None),
        ("POST", "/__control/faults", FAULT),
        ("DELETE", "/__control/faults", None),
        ("POST", "/__control/clock", {"advance": 60}),
        ("POST", "/__control/settings", {"delivery:rbs": "hold"}),
        ("POST", "/__control/deliver", {"gateway": "rbs"}),
        ("POST", "/rbs/__control/callback", {"mdOrder": "x", "operation": "deposited"}),
    ]
    return [
        requests.request(method, url + path, json=body, headers=headers, timeout=10)
        for method, path, body in calls
    ]


def register_rbs(url: str, number: str, return_url: str, **extra) -> dict:
    fields = {
        **RBS_LOGIN,
        "orderNumber": number,
        "amount": "2000",
        "returnUrl": return_url,
        **extra,
    }
    reply = requests.post(f"{url}/rbs/payment/rest/register.do", data=fields, timeout=10).json()
    assert "formUrl" in reply, reply
    return reply


def order_status(url: str, order_id: str) -> int:
    fields = {**RBS_LOGIN, "orderId": order_id}
    reply = requests.post(
        f"{url}/rbs/payment/rest/getOrderStatusExtended.do", data=fields, timeout=10
    ).json()
    return reply["orderStatus"]


@pytest.fixture
def mounted():
    """The sandbox as app.py mounts it in a demo: under /sandbox of a host app, on loopback."""

    def start(**config):
        inner = create_sandbox({"SANDBOX_DB": ":memory:", **config})
        outer = Flask("host")
        outer.wsgi_app = DispatcherMiddleware(outer.wsgi_app, {"/sandbox": inner})
        return serving(outer)

    return start


def test_without_a_configured_token_there_is_no_control_api(mounted):
    with mounted() as server:
        url = f"{server.url}/sandbox"
        order = register_rbs(url, "501", "https://shop.example/return/secret-token-1")
        for headers in ({}, {HEADER: ""}, {HEADER: "anything"}):
            assert [r.status_code for r in controls(url, headers)] == [404] * 8
        # Nothing was armed, moved or forgotten: the order is still there, unpaid.
        assert order_status(url, order["orderId"]) == 0


@pytest.mark.parametrize("headers", [{}, {HEADER: ""}, {HEADER: "wrong-token"}])
def test_a_missing_or_wrong_token_is_refused_even_from_the_loopback(mounted, headers):
    with mounted(SANDBOX_CONTROL_TOKEN="the-right-token") as server:
        url = f"{server.url}/sandbox"
        order = register_rbs(url, "502", "https://shop.example/return/secret-token-2")
        answers = controls(url, headers)
        assert [r.status_code for r in answers] == [403] * 8
        assert all("secret-token-2" not in r.text for r in answers)
        assert "X-Sandbox-Control" in answers[0].text  # the refusal says what is missing
        assert order_status(url, order["orderId"]) == 0  # the "status" fault was not armed


def test_the_right_token_opens_the_control_api(mounted):
    with mounted(SANDBOX_CONTROL_TOKEN="the-right-token") as server:
        url = f"{server.url}/sandbox"
        order = register_rbs(url, "503", "https://shop.example/return/secret-token-3")
        headers = {HEADER: "the-right-token"}
        state = requests.get(f"{url}/__state", headers=headers, timeout=10)
        assert state.status_code == 200
        assert state.json()["rbs_order"][0]["returnUrl"].endswith("secret-token-3")
        armed = requests.post(f"{url}/__control/faults", json=FAULT, headers=headers, timeout=10)
        assert armed.status_code == 201
        assert order_status(url, order["orderId"]) == 2  # the armed fault answers "deposited"


def test_the_token_is_read_from_the_environment(monkeypatch, mounted):
    monkeypatch.setenv("SANDBOX_CONTROL_TOKEN", "from-the-environment")
    with mounted() as server:
        url = f"{server.url}/sandbox/__state"
        assert requests.get(url, timeout=10).status_code == 403
        assert requests.get(url, headers={HEADER: "from-the-environment"}, timeout=10).ok


def test_the_tests_sandbox_asks_for_the_token(sandbox):
    assert requests.get(f"{sandbox.url}/__state", timeout=10).status_code == 403
    answer = requests.get(f"{sandbox.url}/__state", headers={HEADER: CONTROL_TOKEN}, timeout=10)
    assert answer.status_code == 200


# The public pages: one payment each ------------------------------------------------------------
def altapay_request(url: str, shop_orderid: str, name: str, ok_url: str) -> str:
    fields = {
        "terminal": "Storefront Sandbox Terminal",
        "shop_orderid": shop_orderid,
        "amount": "20.00",
        "currency": "EUR",
        "customer_info[billing_firstname]": name,
        "customer_info[email]": f"{name.lower()}@example.com",
        "config[callback_ok]": ok_url,
    }
    answer = requests.post(
        f"{url}/altapay/merchant/API/createPaymentRequest",
        data=fields,
        auth=ALTAPAY_LOGIN,
        timeout=10,
    )
    return re.search(r"<Url>([^<]+)</Url>", answer.text)[1].replace("&amp;", "&")


def interpay_session(url: str, requestid: str, name: str, success_url: str) -> str:
    fields = {
        "TERMID": "SANDBX01",
        "PASS": "sandbox-pass",
        "TYPE": "W",
        "ACTION": "StartSession",
        "AMT": "20.00",
        "REQUESTID": requestid,
        "CUSTEMAIL": f"{name.lower()}@example.com",
        "CUSTNAME": name,
        "DESC": f"Order {requestid}",
        "SUCCESSURL": success_url,
        "FAILUREURL": success_url,
        "LANG": "E",
    }
    answer = requests.post(f"{url}/interpay/svra/", json=fields, timeout=10).json()
    assert answer["CODE"] == "0000", answer
    return answer["URL"]


def test_each_hosted_page_shows_its_own_payment_and_no_other(sandbox):
    url = sandbox.url
    ours = register_rbs(url, "601", "https://shop.example/r/ours-tok", description="Ours")
    theirs = register_rbs(
        url, "602", "https://shop.example/r/theirs-tok", description="Bob Theirs, 2 Elm Road"
    )
    ours_altapay = altapay_request(url, "701-1", "Ann", "https://shop.example/ok/ours-tok")
    altapay_request(url, "702-1", "Bob", "https://shop.example/ok/theirs-tok")
    ours_interpay = interpay_session(url, "8000000001", "Ann", "https://shop.example/s/ours-tok")
    interpay_session(url, "8000000002", "Bob", "https://shop.example/s/theirs-tok")
    pages = [requests.get(page, timeout=10) for page in (ours["formUrl"], ours_altapay)]
    pages.append(requests.get(ours_interpay, timeout=10))
    for page in pages:
        assert page.status_code == 200
        # The page's own payment id (in its address) is random, and may hold "602" by chance.
        text = page.text
        for own in parse_qs(urlsplit(page.url).query).values():
            text = text.replace(own[0], "")
        for foreign in ("theirs-tok", "Bob", "602", "702-1", "8000000002", theirs["orderId"]):
            assert foreign not in text, (page.url, foreign)
        # None of the pages hands out a return URL with its token before the payment is made.
        assert "ours-tok" not in page.text, page.url
    assert "601" in pages[0].text and "20.00" in pages[0].text
    assert "701-1" in pages[1].text and "20.00 EUR" in pages[1].text
    assert "20.00" in pages[2].text


def test_a_page_link_without_a_known_payment_shows_nothing(sandbox):
    register_rbs(sandbox.url, "603", "https://shop.example/r/theirs-tok")
    for path in (
        "/rbs/payment/merchants/sandbox-merchant/payment_en.html",
        "/rbs/payment/merchants/sandbox-merchant/payment_en.html?mdOrder=nope",
        "/rbs/payment/acs.html",
        "/altapay/merchant.php/API/requestForm",
        "/altapay/merchant.php/API/requestForm?pid=nope",
        "/interpay/api/HOSTPYMT/pay/",
        "/interpay/api/HOSTPYMT/pay/?SecureID=nope",
    ):
        answer = requests.get(sandbox.url + path, timeout=10)
        assert answer.status_code == 404, path
        assert "theirs-tok" not in answer.text and "603" not in answer.text


@pytest.mark.parametrize(
    "path,body",
    [
        ("/__control/deliver", {"gateway": "rbs", "copies": "two"}),
        ("/__control/deliver", {"gateway": "rbs", "copies": [2]}),
        ("/__control/clock", {"advance": "nan"}),
        ("/__control/clock", {"advance": "inf"}),
        ("/__control/clock", {}),
        ("/__control/faults", {"gateway": "rbs"}),
        ("/__control/settings", ["not", "an", "object"]),
    ],
)
def test_malformed_control_calls_are_a_400(sandbox, path, body):
    answer = sandbox.http.post(sandbox.url + path, json=body, timeout=10)
    assert answer.status_code == 400
    assert sandbox.state()["now"] < 1e12  # the clock was not moved to nowhere
