"""Attacks an outside review made on a running shop, each held off now: a request that would
stall a worker, a hoarding order, a forged money-in callback, a flood of returns, a stolen
checkout key, a forged Host, production settings that fail open, lost notifications, mails
that overwrite each other, and the moment between an order's commit and its payment.

Each runs over real HTTP against the sandbox gateway where a gateway is involved.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from storefront import create_app
from storefront.catalogue.models import Product
from storefront.config import ConfigError
from storefront.extensions import db
from storefront.gateways.base import GatewayError, GatewayRefused, Journal, Result
from storefront.gateways.interpay import InterPayGateway, _parse
from storefront.money import from_major
from storefront.orders import mail
from storefront.orders.models import Order, OrderState
from storefront.orders.service import CustomerDetails, place_order
from storefront.payments.models import Actor, AttemptState, Cause, PaymentAttempt
from storefront.payments.settle import apply_result
from storefront.timeutil import now_utc
from tests.adapters import settings
from tests.browser import Browser
from tests.journeys import (
    CUSTOMER,
    evidence_of,
    latest_order,
    pay_rbs,
    product,
    to_gateway,
)
from tests.oracles import rbs_checksum
from tests.production import production

scenario = pytest.mark.scenario
ALTAPAY_SECRET = "sandbox-shared-secret"  # the sandbox's demo secret


def count(events: list[tuple[str, str]], summary_part: str) -> int:
    return sum(summary_part in summary for _, summary in events)


# 1. One request must not stall a worker --------------------------------------------------------
def test_amounts_from_outside_are_read_by_a_bounded_pattern():
    assert from_major("999999999999999.99", "EUR") == 99999999999999999
    for text in ("9" * 16, "1." + "0" * 7, "9" * 1_000_000, "1e5", "Infinity"):
        with pytest.raises(ValueError):
            from_major(text, "EUR")


@scenario(
    "verify-order with a 200,000-digit amount → 400 at once; with 1,000,000 digits → 413 "
    "unread; the worker goes on serving",
    gateway="altapay",
)
def test_a_huge_amount_is_refused_without_stalling_the_worker(make_shop, sandbox):
    shop = make_shop(GATEWAYS="altapay")
    form = {"shop_orderid": "10000001-1", "currency": "EUR"}
    started = time.monotonic()
    inside = requests.post(
        f"{shop.url}/pay/altapay/verify-order", data={**form, "amount": "9" * 200_000}, timeout=30
    )
    over = requests.post(
        f"{shop.url}/pay/altapay/verify-order", data={**form, "amount": "9" * 1_000_000}, timeout=30
    )
    took = time.monotonic() - started
    assert inside.status_code == 400 and "malformed" in inside.text
    assert over.status_code == 413
    assert requests.get(f"{shop.url}/", timeout=10).status_code == 200
    print(f"two huge verify-order posts answered in {took:.3f} s")  # a figure, not an assert


def test_an_arithmetic_error_from_a_request_is_a_400(app):
    @app.get("/__overflow")
    def overflow():
        raise OverflowError("a number out of range")

    response = app.test_client().get("/__overflow")
    assert response.status_code == 400
    assert "out of range" in response.get_data(as_text=True)


# 3. One order must not empty the shelves -------------------------------------------------------
def _details(email: str = "ann@example.com") -> CustomerDetails:
    return CustomerDetails(email, "Ann", "1 Main Street", "Dublin", "D01", "IE")


@scenario(
    "One unpaid order asks for 11 of a product, 31 items, or one email piles up unpaid orders "
    "→ refused with a clear message, no stock held",
    gateway="rbs",
)
def test_what_one_order_and_one_customer_may_hold_is_bounded(app):
    from tests.factories import make_product

    with app.test_request_context():
        tea = make_product("Tea", stock=200)
        cups = [make_product(f"Cup {n}", stock=200) for n in range(4)]
        from storefront.orders.service import OverLimit, new_token

        with pytest.raises(OverLimit, match="at most 10 of Tea"):
            place_order([(tea, 11)], _details(), new_token())
        with pytest.raises(OverLimit, match="at most 30 items"):
            place_order([(cup, 8) for cup in cups], _details(), new_token())
        place_order([(cup, 10) for cup in cups[:3]], _details("Bob@Example.com"), new_token())
        with pytest.raises(OverLimit, match="other orders waiting for payment"):
            place_order([(tea, 1)], _details("bob@example.com "), new_token())
        assert db.session.get(Product, tea.id).stock == 200
        assert place_order([(tea, 10)], _details("carol@example.com"), new_token())[1]


@scenario(
    "'Try again' after the payment window closed → no new attempt, the hold is not stretched",
    gateway="rbs",
)
def test_no_new_attempt_after_the_payment_window(shop, sandbox):
    _, slug = product(shop)
    browser = Browser()
    to_gateway(shop, browser, slug)
    pay_rbs(browser, card="4000000000000002")  # declined
    order, [attempt] = latest_order(shop)
    with shop.db() as session:
        session.get(Order, order.id).payment_due_by = now_utc() - timedelta(seconds=1)
        session.commit()
    page = browser.get(f"{shop.url}/order/{order.receipt_token}")
    assert "The time to pay for this order has run out" in page
    assert "Try again with" not in page
    token = browser.get(f"{shop.url}/order/lookup").form("/order/lookup").fields["csrf_token"]
    browser.http.post(
        f"{shop.url}/order/{order.receipt_token}/pay",
        data={"csrf_token": token, "gateway": "rbs"},
        timeout=10,
    )
    assert len(latest_order(shop)[1]) == 1


# 4. A money-in callback body is confirmed ------------------------------------------------------
@scenario(
    "A declined try's signed callback posted to callback_ok with a 'captured' xml → the "
    "gateway's payments query decides: not paid",
    gateway="altapay",
)
def test_a_declined_callbacks_checksum_with_a_captured_body_does_not_pay(make_shop, sandbox):
    shop = make_shop(GATEWAYS="altapay")
    _, slug = product(shop, price=1250)
    browser = Browser()
    to_gateway(shop, browser, slug, gateway="altapay")
    form = browser.page.form(button="Cancel payment")
    browser.submit(
        form, button="pay", cardno="4180000000000566", emonth="12", eyear="2034", cvc="123"
    )
    order, [attempt] = latest_order(shop)
    assert attempt.state == AttemptState.DECLINED
    [declined] = [c for c in sandbox.state()["altapay_callback"] if c["kind"] == "fail"]
    fields = dict(declined["fields"])
    xml = re.sub(r"<TransactionStatus>[^<]*<", "<TransactionStatus>captured<", fields["xml"])
    for name in ("ReservedAmount", "CapturedAmount"):
        xml = re.sub(rf"<{name}>[^<]*<", f"<{name}>{fields['amount']}<", xml)
    forged = requests.post(
        f"{shop.url}/pay/altapay/callback/ok", data={**fields, "xml": xml}, timeout=10
    )
    assert forged.status_code == 200
    order, [attempt] = latest_order(shop)
    assert attempt.state == AttemptState.DECLINED
    assert order.state == OrderState.PENDING_PAYMENT
    assert count(evidence_of(shop, attempt.id), "confirming with the gateway") == 1


def test_an_answer_for_another_merchant_is_a_mismatch(make_shop, sandbox):
    shop = make_shop(GATEWAYS="altapay")
    _, slug = product(shop, price=1250)
    to_gateway(shop, Browser(), slug, gateway="altapay")
    order, [attempt] = latest_order(shop)
    with shop.app.test_request_context():
        row = db.session.get(PaymentAttempt, attempt.id)
        result = Result(
            outcome="paid",
            reference=attempt.reference,
            amount=1250,
            currency="EUR",
            captured=1250,
            merchant="Another Shop's Terminal",
        )
        apply_result(row, result, Journal(), Cause(Actor.GATEWAY, "callback ok"))
        assert row.state == AttemptState.MISMATCH
        assert db.session.get(Order, order.id).state == OrderState.ON_HOLD


# 5. Lower ---------------------------------------------------------------------------------------
@scenario(
    "Twenty browser returns in a row → one status query, not twenty (returns spaced as the "
    "pending page's checks)",
    gateway="rbs",
)
def test_a_flood_of_returns_makes_one_status_query(make_shop, sandbox):
    shop = make_shop(STATUS_RECHECK_SECONDS=600)
    _, slug = product(shop)
    browser = Browser()
    to_gateway(shop, browser, slug)
    order, [attempt] = latest_order(shop)
    for _ in range(20):
        answer = requests.get(
            f"{shop.url}/pay/rbs/return/{attempt.token}?orderId={attempt.gateway_id}",
            timeout=10,
            allow_redirects=False,
        )
        assert answer.status_code == 303
    events = evidence_of(shop, attempt.id)
    assert count(events, "getOrderStatusExtended.do") <= 2  # one request, and its response


@scenario(
    "Two InterPay returns before the customer paid → one GetResult; the session is not "
    "cancelled, and the customer can still pay",
    gateway="interpay",
)
def test_early_interpay_returns_never_cancel_the_session(make_shop, sandbox):
    shop = make_shop(GATEWAYS="interpay")
    _, slug = product(shop)
    browser = Browser()
    gateway_page = to_gateway(shop, browser, slug, gateway="interpay")
    order, [attempt] = latest_order(shop)
    for _ in range(2):
        requests.get(
            f"{shop.url}/pay/interpay/return/{attempt.token}?SecureID={attempt.gateway_id}",
            timeout=10,
        )
    _, [attempt] = latest_order(shop)
    assert attempt.state != AttemptState.CANCELLED
    assert count(evidence_of(shop, attempt.id), "GetResult · POST") == 1
    assert gateway_page.status == 200


@scenario(
    "Another session posts a stolen checkout key → 400, never the victim's order or receipt",
    gateway="rbs",
)
def test_a_checkout_key_from_another_session_is_refused(shop, sandbox):
    _, slug = product(shop)
    victim = Browser()
    review = victim.get(f"{shop.url}/p/{slug}")
    victim.submit(review.form("/cart/add"), quantity=1)
    page = victim.get(f"{shop.url}/checkout/")
    page = victim.submit(page.form("/checkout/"), gateway="rbs", **CUSTOMER)
    key = page.form("/checkout/place").fields["checkout_key"]
    victim.submit(page.form("/checkout/place"))
    order, _ = latest_order(shop)
    thief = Browser()
    token = thief.get(f"{shop.url}/order/lookup").form("/order/lookup").fields["csrf_token"]
    answer = thief.http.post(
        f"{shop.url}/checkout/place",
        data={"csrf_token": token, "checkout_key": key},
        timeout=10,
    )
    assert answer.status_code == 400
    assert order.receipt_token not in answer.text and order.receipt_token not in str(answer.headers)


def test_a_forged_host_header_is_refused(client):
    answer = client.get("/cart/", headers={"Host": "evil.example"})
    assert answer.status_code == 400
    assert "evil.example" not in answer.headers.get("Location", "")


@pytest.mark.parametrize(
    "overrides, named",
    [
        ({"ENV": "Production ", "SECRET_KEY": "x"}, "STOREFRONT_SECRET_KEY"),
        ({"ENV": "staging"}, "STOREFRONT_ENV"),
        ({"SECRET_KEY": "a" * 40}, "STOREFRONT_SECRET_KEY"),
        ({"SECRET_KEY": "ab" * 20}, "STOREFRONT_SECRET_KEY"),
        (
            {"RBS_URL": "http://rbs.gateway.example/payment/rest/"},
            "STOREFRONT_RBS_URL must be https",
        ),
        ({"DATABASE_URL": "sqlite:///shop.db"}, "PostgreSQL"),
        ({"PROXY_COUNT": ""}, "STOREFRONT_PROXY_COUNT must be set"),
        ({"SANDBOX": "maybe"}, "STOREFRONT_SANDBOX"),
    ],
)
def test_production_settings_do_not_fail_open(overrides, named):
    with pytest.raises(ConfigError) as refused:
        create_app(production(**overrides))
    assert named in str(refused.value)


def test_a_normalised_production_setting_starts_as_production():
    app = create_app(production(ENV=" PRODUCTION"))
    assert app.config["ENV"] == "production" and not app.config["SANDBOX"]


def test_sign_in_is_limited_per_account_whatever_the_address(app):
    from storefront.admin import auth

    app.config["ADMIN_SIGN_IN_ACCOUNT_LIMIT"] = 3
    with app.test_request_context():
        for n in range(3):
            with pytest.raises(auth.SignInRefused):
                auth.authenticate("owner@example.com", "wrong", f"192.0.2.{n}")
        with pytest.raises(auth.Throttled):
            auth.authenticate("owner@example.com", "wrong", "198.51.100.7")


@scenario(
    "Receipt, checkout and admin pages → Cache-Control: no-store (no copy kept by a browser "
    "or a proxy)",
    gateway="rbs",
)
def test_private_pages_are_never_stored(shop, sandbox):
    _, slug = product(shop)
    browser = Browser()
    to_gateway(shop, browser, slug)
    pay_rbs(browser)
    order, _ = latest_order(shop)
    for path in (f"/order/{order.receipt_token}", "/checkout/", "/order/lookup", "/admin/sign-in"):
        answer = browser.http.get(f"{shop.url}{path}", timeout=10, allow_redirects=False)
        assert answer.headers.get("Cache-Control") == "no-store", path


@scenario(
    "AltaPay callback_ok with a wrong secret → the customer sees the shop's own order page, "
    "never 'Bad request'; the refusal is in the evidence",
    gateway="altapay",
)
def test_a_wrongly_signed_relayed_page_shows_the_customer_the_shop(make_shop, sandbox):
    shop = make_shop(GATEWAYS="altapay", ALTAPAY_SECRET="not-the-gateways-secret")
    _, slug = product(shop, price=1250)
    browser = Browser()
    to_gateway(shop, browser, slug, gateway="altapay")
    form = browser.page.form(button="Cancel payment")
    shown = browser.submit(
        form, button="pay", cardno="4111111111111111", emonth="12", eyear="2034", cvc="123"
    )
    assert "Bad request" not in shown and "checksum" not in shown.text
    order, [attempt] = latest_order(shop)
    assert f"Order {order.number}" in shown or order.number in shown
    assert count(evidence_of(shop, attempt.id), "refused: checksum missing or wrong") >= 1


def test_the_legacy_interpay_reply_may_not_name_a_field_twice():
    with pytest.raises(GatewayError, match="more than once"):
        _parse("CODE=0000&CUSTEMAIL=a&CODE=0000&ACK=Y@example.com")
    assert _parse("CODE=0000&URL=https://gw.example/pay?SecureID=ab")["URL"].endswith("=ab")


def test_a_value_the_legacy_encoding_cannot_carry_is_never_sent():
    from storefront.gateways.base import Line, PaymentRequest

    # Nothing listens on this port: a message sent would be a GatewayError (no answer), so a
    # GatewayRefused proves the adapter refused before sending anything.
    adapter = InterPayGateway.from_config(
        settings(
            INTERPAY_URL="http://127.0.0.1:9/svra/",
            INTERPAY_ENCODING="legacy",
            GATEWAY_CONNECT_TIMEOUT=1,
        )
    )
    request = PaymentRequest(
        reference="1000000101",
        order_number="10000001",
        amount=1250,
        currency="EUR",
        description="Order 10000001",
        email="a&CODE=0000&ACK=Y@example.com",
        customer_name="Ann Example",
        country="IE",
        language="en",
        lines=(Line("Tea", 1, 1250),),
        return_url="https://shop.example/pay/interpay/return/t",
        fail_url="https://shop.example/pay/interpay/return/t",
    )
    with pytest.raises(GatewayRefused, match="cannot carry '&' in CUSTEMAIL"):
        adapter.start(request, Journal())


# 6. Callbacks and mail ---------------------------------------------------------------------------
@scenario(
    "A signed BPC/RBS callback while the status query fails → answered 503, so the gateway "
    "sends it again; the next one settles it",
    gateway="rbs",
)
def test_an_unsettled_notification_is_answered_so_that_it_comes_again(shop, sandbox):
    _, slug = product(shop)
    browser = Browser()
    to_gateway(shop, browser, slug)
    order, [attempt] = latest_order(shop)
    sandbox.arm("rbs", "getOrderStatusExtended", "http_503", count=10)
    form = {
        "mdOrder": attempt.gateway_id,
        "orderNumber": attempt.reference,
        "operation": "deposited",
        "status": "1",
    }
    form["checksum"] = rbs_checksum(form, "sandbox-callback-key")
    answer = requests.post(f"{shop.url}/pay/rbs/callback/notification", data=form, timeout=30)
    assert answer.status_code == 503
    sandbox.disarm()
    again = requests.post(f"{shop.url}/pay/rbs/callback/notification", data=form, timeout=30)
    assert again.status_code == 200


def test_every_sending_of_a_mail_is_its_own_file(app, tmp_path):
    from email.message import EmailMessage

    with app.app_context():
        message = EmailMessage()
        message.set_content("Your order")
        mail._deliver(message, "10000001-order_confirmation")
        mail._deliver(message, "10000001-order_confirmation")
    folder = Path(app.instance_path) / "mail"
    assert len(list(folder.glob("10000001-order_confirmation-*.eml"))) == 2


@scenario(
    "The order page between the order's commit and its payment's start → 'waiting', never "
    "'not completed' with 'Try again'; the cart stays empty",
    gateway="rbs",
)
def test_an_order_whose_payment_is_being_started_shows_pending(app, client):
    from tests.factories import make_product

    with app.test_request_context():
        tea = make_product("Tea", stock=5)
        from storefront.orders.service import new_token

        order, _ = place_order([(tea, 1)], _details(), new_token())
        token = order.receipt_token
    with client.session_transaction() as session:
        session["open_order"] = token
    page = client.get(f"/order/{token}").get_data(as_text=True)
    assert "was not completed" not in page and "Try again" not in page
    assert 'Cart <span class="cart-count">0</span>' in client.get("/").get_data(as_text=True)


@scenario(
    "A signed notice repeating what a settled payment holds → stored and acknowledged, no "
    "round trip to the gateway; a refund notice is still checked",
    gateway="rbs",
)
def test_a_repeated_notice_about_a_settled_payment_needs_no_status_query(shop, sandbox):
    _, slug = product(shop)
    browser = Browser()
    to_gateway(shop, browser, slug)
    pay_rbs(browser)
    _, [attempt] = latest_order(shop)
    assert attempt.state == AttemptState.PAID
    # Each status query leaves two rows: its request and the gateway's response.
    queries = count(evidence_of(shop, attempt.id), "getOrderStatusExtended.do")
    form = {
        "mdOrder": attempt.gateway_id,
        "orderNumber": attempt.reference,
        "operation": "deposited",
        "status": "1",
    }
    form["checksum"] = rbs_checksum(form, "sandbox-callback-key")
    for _ in range(3):
        answer = requests.post(f"{shop.url}/pay/rbs/callback/notification", data=form, timeout=10)
        assert answer.status_code == 200
    events = evidence_of(shop, attempt.id)
    assert count(events, "getOrderStatusExtended.do") == queries
    assert count(events, "not asked again") == 3
    refund = {**form, "operation": "refunded"}
    refund["checksum"] = rbs_checksum(refund, "sandbox-callback-key")
    answer = requests.post(f"{shop.url}/pay/rbs/callback/notification", data=refund, timeout=10)
    assert answer.status_code == 200, answer.text
    assert count(evidence_of(shop, attempt.id), "getOrderStatusExtended.do") == queries + 2


def test_the_mounted_sandbox_takes_the_shops_own_credentials(tmp_path):
    import json
    import os
    import subprocess
    import sys

    probe = (
        "import json, app; "
        "sandbox = app.app.wsgi_app.mounts['/sandbox']; "
        "print(json.dumps({k: sandbox.config[k] for k in "
        "('SANDBOX_RBS_PASSWORD', 'SANDBOX_ALTAPAY_SECRET', 'SANDBOX_INTERPAY_PASS')}))"
    )
    env = {
        **os.environ,
        "STOREFRONT_INSTANCE_PATH": str(tmp_path),
        "STOREFRONT_RBS_PASSWORD": "a-demo-of-its-own",
        "STOREFRONT_ALTAPAY_SECRET": "another-secret",
        "STOREFRONT_INTERPAY_PASS": "third",
    }
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(  # noqa: S603 - our own interpreter on our own module
        [sys.executable, "-c", probe], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.splitlines()[-1]) == {
        "SANDBOX_RBS_PASSWORD": "a-demo-of-its-own",
        "SANDBOX_ALTAPAY_SECRET": "another-secret",
        "SANDBOX_INTERPAY_PASS": "third",
    }


@scenario(
    "A staff cookie saved before signing out, sent again afterwards → the sign-in page, not "
    "the admin (signing out revokes the session on the server)",
    gateway="rbs",
)
def test_signing_out_revokes_a_saved_staff_cookie(app):
    from storefront.admin.models import StaffUser
    from tests.browser import Page

    with app.app_context():
        user = StaffUser(email="owner@example.com", name="Owner")
        user.set_password("correct horse battery staple")
        db.session.add(user)
        db.session.commit()
    client = app.test_client()
    form = Page.from_test_client(client.get("/admin/sign-in")).form("/admin/sign-in")
    client.post(
        "/admin/sign-in",
        data={
            **form.fields,
            "email": "owner@example.com",
            "password": "correct horse battery staple",
        },
    )
    assert client.get("/admin/orders").status_code == 200
    saved = client.get_cookie("session").value
    page = Page.from_test_client(client.get("/admin/orders"))
    client.post("/admin/sign-out", data=page.form("/admin/sign-out").fields)
    thief = app.test_client()
    thief.set_cookie("session", saved)
    answer = thief.get("/admin/orders")
    assert answer.status_code == 302 and "/admin/sign-in" in answer.headers["Location"]
