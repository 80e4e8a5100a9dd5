"""The whole customer journey on the BPC/RBS gateway, over real HTTP against the sandbox."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
from sqlalchemy import func, select

from storefront.catalogue.models import Product
from storefront.orders.models import OrderState, OutboxMessage
from storefront.payments.models import AttemptState, PaymentEvent
from tests.browser import Browser
from tests.journeys import APPROVE, latest_order, pay_rbs, product, to_gateway, wait_for


def stock_of(shop, product_id: int) -> int:
    with shop.db() as session:
        return session.get(Product, product_id).stock


def test_approved_card_ends_on_the_receipt(shop, sandbox):
    product_id, slug = product(shop, name="Kenya Nyeri", price=1250, stock=5)
    browser = Browser()
    page = to_gateway(shop, browser, slug, quantity=2)
    assert urlsplit(page.url).netloc == urlsplit(sandbox.url).netloc  # on the gateway's page
    assert "25.00" in page  # the frozen total reached the gateway in minor units

    page = pay_rbs(browser)

    assert page.url.startswith(shop.url + "/order/")
    assert "Thank you, your payment was received" in page
    assert "411111**1111" in page
    order, attempts = latest_order(shop)
    assert order.state == OrderState.PAID and order.total == 2500
    assert [a.state for a in attempts] == [AttemptState.PAID]
    assert attempts[0].captured == 2500
    assert stock_of(shop, product_id) == 3
    folder = Path(shop.app.instance_path) / "mail"

    # The mails go out after the response, so that no one waits for a mail server: the order
    # received on placement, then its confirmation, each once.
    def sent():
        with shop.db() as session:
            rows = session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars()
            return [(m.kind, m.sent_at is not None) for m in rows]

    expected = [("order_received", True), ("order_confirmation", True)]
    assert wait_for(lambda: sent() == expected, seconds=10.0)
    [mail] = folder.glob(f"{order.number}-order_confirmation-*.eml")  # one file, one sending
    assert order.receipt_token in mail.read_text()
    assert len(list(folder.glob(f"{order.number}-order_received-*.eml"))) == 1


def test_cart_is_empty_after_the_order_is_placed(shop, sandbox):
    _, slug = product(shop)
    browser = Browser()
    to_gateway(shop, browser, slug)
    pay_rbs(browser)
    page = browser.get(f"{shop.url}/cart/")
    assert "Your cart is empty" in page


def test_declined_card_shows_failure_restores_cart_and_try_again_pays_same_order(shop, sandbox):
    product_id, slug = product(shop, name="Sencha", price=900, stock=3)
    browser = Browser()
    to_gateway(shop, browser, slug)

    page = pay_rbs(browser, card="4000000000000002")

    assert "Your payment was not completed" in page
    assert "Nothing was charged" in page
    order, attempts = latest_order(shop)
    assert order.state == OrderState.PENDING_PAYMENT
    assert [a.state for a in attempts] == [AttemptState.DECLINED]
    assert stock_of(shop, product_id) == 2  # still reserved for this order
    assert "Sencha" in browser.get(f"{shop.url}/cart/")  # the cart came back

    browser.get(page.url)
    page = browser.submit(browser.page.form("/pay", button="Try again"), gateway="rbs")
    page = pay_rbs(browser)

    assert "Thank you, your payment was received" in page
    again, attempts = latest_order(shop)
    assert again.id == order.id
    assert [a.state for a in attempts] == [AttemptState.DECLINED, AttemptState.PAID]
    assert attempts[0].reference != attempts[1].reference  # a new orderNumber per attempt
    assert stock_of(shop, product_id) == 2
    # The order is paid: its lines left the cart, which no longer offers to buy them again.
    assert "Your cart is empty" in browser.get(f"{shop.url}/cart/")
    assert browser.get(f"{shop.url}/checkout/review").url == f"{shop.url}/cart/"


def test_cancel_on_the_gateway_page_is_a_failure_with_a_safe_reason(shop, sandbox):
    _, slug = product(shop)
    browser = Browser()
    to_gateway(shop, browser, slug)
    page = pay_rbs(browser, action="cancel")
    assert "Your payment was not completed" in page
    _, attempts = latest_order(shop)
    assert attempts[0].state in (AttemptState.CANCELLED, AttemptState.DECLINED)


def test_two_phase_holds_the_money_and_the_receipt_says_so(make_shop, sandbox):
    shop = make_shop(RBS_TWO_PHASE=True)
    _, slug = product(shop, price=4000)
    browser = Browser()
    to_gateway(shop, browser, slug)
    page = pay_rbs(browser)
    assert "your order is confirmed" in page
    assert "authorised" in page
    order, attempts = latest_order(shop)
    assert order.state == OrderState.AUTHORIZED
    assert attempts[0].state == AttemptState.AUTHORIZED
    assert (attempts[0].authorized, attempts[0].captured) == (4000, 0)
    rbs_orders = sandbox.state()["rbs_order"]
    assert [o["orderStatus"] for o in rbs_orders] == [1]


def test_three_d_secure_step_then_approval(shop, sandbox):
    _, slug = product(shop)
    browser = Browser()
    to_gateway(shop, browser, slug)
    page = pay_rbs(browser, card="5555555555555599")
    assert "authentication" in page.text.lower()
    page = browser.submit(page.forms[0])
    assert "Thank you, your payment was received" in page


def test_payment_page_left_until_expiry_ends_expired_and_the_order_payable(shop, sandbox):
    _, slug = product(shop)
    browser = Browser()
    to_gateway(shop, browser, slug)
    pay_rbs(browser, card="4000000000000051")  # the gateway keeps it unpaid
    order, attempts = latest_order(shop)
    assert attempts[0].state in (AttemptState.REDIRECTED, AttemptState.PENDING)

    sandbox.advance(1201)  # the 20-minute session lifetime runs out; the gateway calls back

    def expired():
        _, now = latest_order(shop)
        return now[0].state == AttemptState.EXPIRED

    assert wait_for(expired, seconds=10.0)
    page = browser.get(f"{shop.url}/order/{order.receipt_token}")
    assert "timed out" in page.text
    assert latest_order(shop)[0].state == OrderState.PENDING_PAYMENT


def test_forged_return_does_not_mark_paid(shop, sandbox):
    _, slug = product(shop)
    browser = Browser()
    to_gateway(shop, browser, slug)  # on the gateway's page, not paid
    order, attempts = latest_order(shop)
    attempt = attempts[0]
    forged = (
        f"{shop.url}/pay/rbs/return/{attempt.token}?orderId={attempt.gateway_id}"
        "&orderStatus=2&status=paid&paid=1&amount=1"
    )
    page = browser.get(forged)
    assert "Thank you" not in page
    order, attempts = latest_order(shop)
    assert order.state == OrderState.PENDING_PAYMENT
    assert attempts[0].state in (AttemptState.REDIRECTED, AttemptState.PENDING)


def test_return_naming_another_payment_is_refused(shop, sandbox):
    _, slug = product(shop)
    to_gateway(shop, Browser(), slug)
    _, first = latest_order(shop)
    to_gateway(shop, Browser(), slug)
    _, second = latest_order(shop)
    response = requests.get(
        f"{shop.url}/pay/rbs/return/{first[0].token}?orderId={second[0].gateway_id}", timeout=10
    )
    assert response.status_code == 400
    assert latest_order(shop)[1][0].state == AttemptState.REDIRECTED


def test_unknown_or_malformed_return_gets_a_clear_answer(shop, sandbox):
    for url, status in [
        ("/pay/rbs/return/" + "x" * 32, 404),
        ("/pay/rbs/return/short", 404),
        ("/pay/nosuch/return/" + "x" * 32, 404),
    ]:
        response = requests.get(shop.url + url, timeout=10)
        assert response.status_code == status, url
    _, slug = product(shop)
    to_gateway(shop, Browser(), slug)
    _, attempts = latest_order(shop)
    response = requests.post(
        f"{shop.url}/pay/rbs/return/{attempts[0].token}", data={"orderId": "bad id <>"}, timeout=10
    )
    assert response.status_code == 400
    assert "malformed" in response.text


def test_callback_with_bad_checksum_changes_nothing_and_is_kept_as_evidence(shop, sandbox):
    _, slug = product(shop)
    browser = Browser()
    to_gateway(shop, browser, slug)
    _, attempts = latest_order(shop)
    attempt = attempts[0]
    forged = {
        "mdOrder": attempt.gateway_id,
        "orderNumber": attempt.reference,
        "operation": "deposited",
        "status": "1",
        "checksum": "0" * 64,
    }
    response = requests.post(f"{shop.url}/pay/rbs/callback/notification", data=forged, timeout=10)
    assert response.status_code == 400
    response = requests.get(
        f"{shop.url}/pay/rbs/callback/notification",
        params={k: v for k, v in forged.items() if k != "checksum"},
        timeout=10,
    )
    assert response.status_code == 400
    order, attempts = latest_order(shop)
    assert attempts[0].state == AttemptState.REDIRECTED
    with shop.db() as session:
        summaries = (
            session.execute(
                select(PaymentEvent.summary).where(PaymentEvent.attempt_id == attempt.id)
            )
            .scalars()
            .all()
        )
    assert sum("refused" in s for s in summaries) == 2


def test_callback_for_unknown_payment_is_404(shop, sandbox):
    response = requests.post(
        f"{shop.url}/pay/rbs/callback/notification",
        data={"mdOrder": "abc", "orderNumber": "1_1", "operation": "deposited", "status": "1"},
        timeout=10,
    )
    assert response.status_code in (400, 404)


def test_callback_alone_settles_a_payment_whose_browser_never_returned(shop, sandbox):
    _, slug = product(shop)
    browser = Browser()
    to_gateway(shop, browser, slug)
    form = browser.page.form(button="Cancel")
    # Pay, but do not follow the gateway's redirect back to the shop: the tab was closed.
    browser.http.post(
        browser.page.url
        if not form.action
        else requests.compat.urljoin(browser.page.url, form.action),
        data={
            **form.fields,
            "action": "pay",
            "pan": "4111111111111111",
            "expiry": "12/34",
            "cvc": "123",
            "cardholder": "A",
        },
        allow_redirects=False,
        timeout=10,
    )

    def paid():
        return latest_order(shop)[0].state == OrderState.PAID

    assert wait_for(paid, seconds=10.0)


def test_double_click_on_place_order_makes_one_order_and_one_registration(shop, sandbox):
    _, slug = product(shop)
    browser = Browser()
    page = browser.get(f"{shop.url}/p/{slug}")
    browser.submit(page.form("/cart/add"), quantity=1)
    page = browser.get(f"{shop.url}/checkout/")
    page = browser.submit(
        page.form("/checkout/"),
        gateway="rbs",
        email="a@example.com",
        name="A",
        address="B",
        city="C",
        postcode="D",
        country="IE",
        terms="y",
    )
    place = page.form("/checkout/place")
    first = browser.submit(place)
    browser.page = page
    second = browser.submit(place)  # the same form again: a double click, or a second tab
    assert urlsplit(first.url).netloc == urlsplit(second.url).netloc == urlsplit(sandbox.url).netloc
    assert first.url == second.url
    with shop.db() as session:
        from storefront.orders.models import Order

        assert session.execute(select(func.count()).select_from(Order)).scalar() == 1
    assert len(sandbox.state()["rbs_order"]) == 1


def test_price_field_slipped_into_checkout_changes_nothing(shop, sandbox):
    _, slug = product(shop, price=1250)
    browser = Browser()
    page = browser.get(f"{shop.url}/p/{slug}")
    browser.submit(page.form("/cart/add"), quantity=1, price="1", unit_price="1")
    page = browser.get(f"{shop.url}/checkout/")
    page = browser.submit(
        page.form("/checkout/"),
        gateway="rbs",
        total="1",
        amount="1",
        email="a@example.com",
        name="A",
        address="B",
        city="C",
        postcode="D",
        country="IE",
        terms="y",
    )
    browser.submit(page.form("/checkout/place"), total="1", amount="1")
    order, _ = latest_order(shop)
    assert order.total == 1250
    assert sandbox.state()["rbs_order"][0]["amount"] == 1250


def test_a_payment_on_a_gateway_the_shop_no_longer_offers_still_has_its_pages(make_shop, sandbox):
    """The operator took BPC/RBS off the checkout while a customer was paying there: the
    customer's return and receipt links still answer, with the order as it stands."""
    before = make_shop(GATEWAYS="rbs")
    sandbox.settings(**{"delivery:rbs": "hold"})  # no callback reaches the old shop either
    _, slug = product(before)
    browser = Browser()
    to_gateway(before, browser, slug)
    form = browser.page.form(button="Cancel")
    back = browser.http.post(
        urljoin(browser.page.url, form.action or browser.page.url),
        data={**form.fields, "action": "pay", "pan": APPROVE, "expiry": "12/34", "cvc": "123"},
        allow_redirects=False,
        timeout=30,
    ).headers["Location"]
    after = make_shop(GATEWAYS="altapay")  # the same database, reconfigured
    path = back.split("/", 3)[3]

    page = browser.get(f"{after.url}/{path}")

    assert page.status == 200, page.text
    assert "Waiting for the bank" in page, (
        page.text
    )  # unsettled; nothing asked of an unknown gateway
    assert latest_order(after)[0].state == OrderState.PENDING_PAYMENT
