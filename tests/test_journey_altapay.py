"""The customer journey on AltaPay: the gateway POSTs the result to the shop's callback pages
and relays the shop's answer to the customer with JavaScript stripped (or follows a 30x)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select

from storefront.orders.models import OrderState
from storefront.payments.models import AttemptState, PaymentEvent
from tests.browser import Browser
from tests.journeys import latest_order, pay_altapay, product, to_gateway, wait_for

scenario = pytest.mark.scenario


@pytest.fixture
def altapay_shop(make_shop):
    return make_shop(GATEWAYS="altapay")


def on_gateway(page, sandbox) -> bool:
    return urlsplit(page.url).netloc == urlsplit(sandbox.url).netloc


@scenario(
    "AltaPay: the gateway posts callback_ok and relays the shop's receipt, scripts "
    "stripped, links still pointing at the shop",
    gateway="altapay",
)
def test_ok_callback_page_is_relayed_as_the_receipt(altapay_shop, sandbox):
    _, slug = product(altapay_shop, price=1250)
    browser = Browser()
    page = to_gateway(altapay_shop, browser, slug, gateway="altapay")
    assert on_gateway(page, sandbox)

    page = pay_altapay(browser)

    assert on_gateway(page, sandbox)  # the gateway serves our page from its own address
    assert "Thank you, your order is confirmed" in page
    assert "<script" not in page.text.lower()
    links = re.findall(r'(?:href|action|src)="([^"]+)"', page.text)
    local = [u for u in links if not u.startswith(("http://", "https://", "#", "mailto:"))]
    assert local == []  # every link, form and stylesheet still reaches the shop
    assert f'href="{altapay_shop.url}/static/css/shop.css"' in page.text
    order, attempts = latest_order(altapay_shop)
    assert order.state == OrderState.AUTHORIZED
    assert attempts[0].state == AttemptState.AUTHORIZED
    assert attempts[0].gateway_data["transaction_id"]


def test_payment_and_capture_ends_paid(make_shop, sandbox):
    shop = make_shop(GATEWAYS="altapay", ALTAPAY_CAPTURE=True)
    _, slug = product(shop, price=1250)
    browser = Browser()
    to_gateway(shop, browser, slug, gateway="altapay")
    page = pay_altapay(browser)
    assert "Thank you, your payment was received" in page
    order, attempts = latest_order(shop)
    assert order.state == OrderState.PAID and attempts[0].captured == 1250


@scenario(
    "AltaPay: a declined card → callback_fail page relayed; the order stays payable",
    gateway="altapay",
)
def test_fail_callback_page_offers_to_try_again(altapay_shop, sandbox):
    _, slug = product(altapay_shop)
    browser = Browser()
    to_gateway(altapay_shop, browser, slug, gateway="altapay")
    page = pay_altapay(browser, card="4000000000080566")
    assert "Your payment was not completed" in page
    retry = page.link("Try again")
    assert retry.startswith(altapay_shop.url + "/order/")  # a link, not a session-bound form
    order, attempts = latest_order(altapay_shop)
    assert order.state == OrderState.PENDING_PAYMENT
    assert attempts[0].state == AttemptState.DECLINED
    page = browser.get(retry)  # back at the shop, in the customer's own session
    page = browser.submit(page.form("/pay", button="Try again"), gateway="altapay")
    page = pay_altapay(browser)
    assert "Thank you" in page


@scenario(
    "AltaPay: an open payment → pending page, then callback_notification settles it",
    gateway="altapay",
)
def test_open_payment_is_settled_by_the_notification(make_shop, sandbox):
    shop = make_shop(GATEWAYS="altapay", ALTAPAY_CAPTURE=True)
    sandbox.settings(**{"altapay:open_delay": 0.3})
    _, slug = product(shop, price=1268)  # .68: the gateway answers Open
    browser = Browser()
    to_gateway(shop, browser, slug, gateway="altapay")
    page = pay_altapay(browser)
    assert "Waiting for the bank" in page
    assert latest_order(shop)[1][0].state == AttemptState.PENDING

    assert wait_for(lambda: latest_order(shop)[0].state == OrderState.PAID)


@scenario("A fail callback after success → the order stays paid", gateway="altapay")
def test_fail_after_success_leaves_the_payment_alone(altapay_shop, sandbox):
    sandbox.arm("altapay", "callback", "fail_after_success")
    _, slug = product(altapay_shop)
    browser = Browser()
    to_gateway(altapay_shop, browser, slug, gateway="altapay")
    pay_altapay(browser)

    def fail_posted():
        return any(c.get("kind") == "fail" for c in sandbox.state().get("altapay_callback", []))

    wait_for(fail_posted)
    order, attempts = latest_order(altapay_shop)
    assert order.state == OrderState.AUTHORIZED
    assert attempts[0].state == AttemptState.AUTHORIZED


@scenario(
    "AltaPay: a tampered amount with a valid checksum → not taken as proof; the "
    "gateway's payments query decides; kept in the evidence",
    gateway="altapay",
)
def test_tampered_amount_with_valid_checksum_is_not_proof(altapay_shop, sandbox):
    sandbox.arm("altapay", "callback", "tamper_amount", amount="0.01")
    _, slug = product(altapay_shop, price=1250)
    browser = Browser()
    to_gateway(altapay_shop, browser, slug, gateway="altapay")
    pay_altapay(browser)
    order, attempts = latest_order(altapay_shop)
    # The gateway's own record says 12.50 was reserved: that, not the callback, is applied.
    assert order.state == OrderState.AUTHORIZED
    assert attempts[0].authorized == 1250
    with altapay_shop.db() as session:
        noted = (
            session.execute(
                select(PaymentEvent.summary).where(
                    PaymentEvent.attempt_id == attempts[0].id,
                    PaymentEvent.summary.like("%does not fit the order%"),
                )
            )
            .scalars()
            .all()
        )
    assert noted


@scenario(
    "AltaPay: the shop answers slower than the gateway waits → the gateway's error page; "
    "the payment is still settled once",
    gateway="altapay",
)
def test_shop_too_slow_for_the_gateway(make_shop, sandbox):
    # Without a shared secret the shop must ask `payments` before answering; that call is made
    # slow, and the gateway is told to wait only one second for the shop's answer.
    shop = make_shop(GATEWAYS="altapay", ALTAPAY_SECRET="")
    sandbox.settings(**{"altapay:read_timeout": 1})
    sandbox.arm("altapay", "payments", "delay", seconds=2.5)
    _, slug = product(shop)
    browser = Browser()
    to_gateway(shop, browser, slug, gateway="altapay")
    page = pay_altapay(browser)
    order, _ = latest_order(shop)
    assert on_gateway(page, sandbox)
    assert order.number in page.text  # the gateway's error page names the order
    assert "Thank you" not in page
    assert wait_for(lambda: latest_order(shop)[0].state == OrderState.AUTHORIZED)


def test_verify_order_answers_okay_only_while_payable(altapay_shop, sandbox):
    _, slug = product(altapay_shop, price=1250)
    to_gateway(altapay_shop, Browser(), slug, gateway="altapay")
    _, attempts = latest_order(altapay_shop)
    url = f"{altapay_shop.url}/pay/altapay/verify-order"
    ask = {"shop_orderid": attempts[0].reference, "amount": "12.50", "currency": "978"}
    assert requests.post(url, data=ask, timeout=10).text == "OKAY"
    assert requests.post(url, data={**ask, "amount": "12.49"}, timeout=10).text != "OKAY"
    assert requests.post(url, data={**ask, "shop_orderid": "nope-1"}, timeout=10).text != "OKAY"
    # An amount or a currency that is not one is a clear 400 (the gateway stops, as it does on
    # any answer but OKAY).
    assert requests.post(url, data={**ask, "currency": "xx"}, timeout=10).status_code == 400


@pytest.mark.parametrize("kind", ["ok", "fail", "open", "notification", "nonsense"])
def test_unsigned_or_malformed_callbacks_get_a_clear_answer(altapay_shop, sandbox, kind):
    _, slug = product(altapay_shop)
    to_gateway(altapay_shop, Browser(), slug, gateway="altapay")
    _, attempts = latest_order(altapay_shop)
    form = {
        "shop_orderid": attempts[0].reference,
        "amount": "12.50",
        "currency": "978",
        "status": "succeeded",
        "xml": "<APIResponse><not-closed>",
    }
    response = requests.post(
        f"{altapay_shop.url}/pay/altapay/callback/{kind}", data=form, timeout=10
    )
    if kind in ("ok", "fail", "open"):
        # The gateway shows this answer to the customer: the shop's own page for the order as
        # it stands, never "Bad request"; the refusal is in the evidence.
        assert response.status_code == 200
        assert "Bad request" not in response.text and "checksum" not in response.text
        assert attempts[0].reference.split("-")[0] in response.text
    else:
        assert response.status_code == (404 if kind == "nonsense" else 400)
    assert latest_order(altapay_shop)[1][0].state == AttemptState.REDIRECTED


def test_the_gateways_card_fields_come_inside_the_shops_own_payment_page(altapay_shop, sandbox):
    _, slug = product(altapay_shop, price=1250)
    browser = Browser()
    page = to_gateway(altapay_shop, browser, slug, gateway="altapay")

    assert on_gateway(page, sandbox)
    assert "<h1>Secure card payment</h1>" in page.text  # our page, served by the gateway
    assert f'href="{altapay_shop.url}/static/css/shop.css"' in page.text
    assert "<script" not in page.text.lower()
    form = page.form(button="Cancel payment")
    assert 'name="cardno"' in page.text  # the gateway's own fields, in our form
    assert urlsplit(form.action).path.endswith("/API/requestForm")  # posted to the gateway
    assert "Thank you" in pay_altapay(browser)


def test_without_the_setting_the_gateway_shows_its_own_page(make_shop, sandbox):
    shop = make_shop(GATEWAYS="altapay", ALTAPAY_PAYMENT_PAGE=False)
    _, slug = product(shop, price=1250)
    browser = Browser()
    page = to_gateway(shop, browser, slug, gateway="altapay")
    assert on_gateway(page, sandbox)
    assert "Secure card payment" not in page and "Card payment" in page
    assert "Thank you" in pay_altapay(browser)


def test_payment_page_is_one_empty_card_form_with_absolute_urls_and_no_order(altapay_shop):
    for method in (requests.get, requests.post):
        response = method(
            f"{altapay_shop.url}/pay/altapay/payment-page",
            data={"shop_orderid": "anything", "amount": "12.50"},
            timeout=10,
        )
        assert response.status_code == 200
        html = response.text
        assert html.count('id="PensioPaymentForm"') == 1
        assert re.search(r'<form id="PensioPaymentForm"[^>]*></form>', html)
        assert "<script" not in html.lower()
        links = [u for u in re.findall(r'(?:href|action|src)="([^"]+)"', html) if u[0] != "#"]
        assert links and all(u.startswith(altapay_shop.url) for u in links)
        assert "anything" not in html  # cached per terminal by the gateway: names no order


def test_payment_page_is_not_found_when_altapay_is_not_offered(shop):
    response = requests.get(f"{shop.url}/pay/altapay/payment-page", timeout=10)
    assert response.status_code == 404
