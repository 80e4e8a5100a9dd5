"""A person in Chromium with JavaScript off buys something through the BPC/RBS sandbox.

Screenshots of every step are kept in test-artifacts/ for people to look at.
"""

from __future__ import annotations

import pytest

from storefront.orders.models import OrderState
from tests.journeys import CUSTOMER, latest_order, product

pytestmark = pytest.mark.browser


def checkout_in_chromium(page, shop, slug: str):
    page.goto(f"{shop.url}/")
    page.shot("home")
    page.goto(f"{shop.url}/p/{slug}")
    page.shot("product")
    page.get_by_role("button", name="Add to cart").click()
    page.shot("cart")
    page.get_by_role("link", name="Checkout").click()
    for field in ("email", "name", "address", "city", "postcode"):
        page.fill(f"#{field}", CUSTOMER[field])
    page.select_option("#country", CUSTOMER["country"])
    page.check("#terms")
    page.shot("details")
    page.get_by_role("button", name="Review your order").click()
    page.shot("review")
    page.get_by_role("button", name="Continue to secure payment").click()


def pay_in_chromium(page, card: str):
    page.fill("#pan", card)
    page.fill("#expiry", "12/34")
    page.fill("#cvc", "123")
    page.fill("#cardholder", "Ann Example")
    page.shot("gateway")
    page.get_by_role("button", name="Pay").click()


def test_a_purchase_in_chromium_without_javascript_ends_on_the_receipt(page, shop, sandbox):
    _, slug = product(shop, name="Ethiopia Yirgacheffe", price=1450, stock=4)
    checkout_in_chromium(page, shop, slug)
    assert page.url.startswith(sandbox.url)

    pay_in_chromium(page, "4111111111111111")

    assert page.url.startswith(f"{shop.url}/order/")
    page.shot("receipt")
    assert page.get_by_role("heading", level=1).inner_text() == (
        "Thank you, your payment was received"
    )
    assert "411111**1111" in page.content()
    assert latest_order(shop)[0].state == OrderState.PAID


def test_a_declined_card_in_chromium_offers_to_try_again(page, shop, sandbox):
    _, slug = product(shop, name="Darjeeling", price=800)
    checkout_in_chromium(page, shop, slug)
    pay_in_chromium(page, "4000000000000002")
    page.shot("failure")
    assert "Your payment was not completed" in page.content()
    page.get_by_role("button", name="Try again").click()
    pay_in_chromium(page, "4111111111111111")
    page.shot("receipt-after-retry")
    assert "Thank you, your payment was received" in page.content()


def test_altapay_relays_the_receipt_to_chromium_as_a_complete_page(page, make_shop, sandbox):
    """AltaPay serves our callback_ok answer from its own address with scripts stripped: the
    customer must still get the whole receipt, styled, with links that lead back to the shop."""
    shop = make_shop(GATEWAYS="altapay")
    _, slug = product(shop, name="Kenya AA", price=1250, stock=3)
    fetched = []
    page.on("response", lambda r: fetched.append((r.url, r.status)))
    checkout_in_chromium(page, shop, slug)
    assert page.url.startswith(sandbox.url)

    # The gateway's page is ours: its card fields inside the shop's own payment page.
    assert page.get_by_role("heading", level=1).inner_text() == "Secure card payment"
    assert page.locator("form#PensioPaymentForm #cardno").count() == 1
    page.fill("#cardno", "4111111111111111")
    page.fill("#emonth", "12")
    page.fill("#eyear", "34")
    page.fill("#cvc", "123")
    page.fill("#cardholdername", "Ann Example")
    page.shot("gateway")
    page.get_by_role("button", name="Pay 12.50 EUR").click()

    page.shot("relayed-receipt")
    assert page.url.startswith(sandbox.url)  # the gateway's address, our page
    assert page.get_by_role("heading", level=1).inner_text() == (
        "Thank you, your order is confirmed"
    )
    assert page.locator("script").count() == 0
    assert "Kenya AA" in page.content()
    assert (f"{shop.url}/static/css/shop.css", 200) in fetched  # styled by the shop's own CSS
    order, _ = latest_order(shop)
    assert order.number in page.content()
    assert order.state == OrderState.AUTHORIZED

    page.get_by_role("link", name="this address").click()  # the receipt at the shop
    assert page.url == f"{shop.url}/order/{order.receipt_token}"
    assert "Thank you, your order is confirmed" in page.content()
    page.get_by_role("link", name="Continue shopping").click()
    assert page.url == f"{shop.url}/"


def test_checkout_in_german_then_russian_with_the_header_links_and_javascript_off(page, shop):
    _, slug = product(shop, name="Ethiopia Yirgacheffe", price=1250, stock=4)
    page.goto(f"{shop.url}/p/{slug}")
    page.get_by_role("link", name="Deutsch").click()
    assert page.locator("html").get_attribute("lang") == "de"
    price = page.locator(".product-info .price").inner_text()
    assert price.replace("\N{NO-BREAK SPACE}", " ") == "12,50 €"
    page.get_by_role("button", name="In den Warenkorb").click()
    page.get_by_role("link", name="Zur Kasse").click()
    for field in ("email", "name", "address", "city", "postcode"):
        page.fill(f"#{field}", CUSTOMER[field])
    page.select_option("#country", CUSTOMER["country"])
    page.check("#terms")
    page.shot("details-de")
    page.get_by_role("button", name="Bestellung prüfen").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Bestellung prüfen"
    page.shot("review-de")
    # The switch on the review page comes back to the review page, now in Russian.
    page.get_by_role("link", name="Русский").click()
    assert page.url == f"{shop.url}/checkout/review"
    assert page.locator("html").get_attribute("lang") == "ru"
    assert page.get_by_role("heading", level=1).inner_text() == "Проверить заказ"
    page.shot("review-ru")
    page.get_by_role("link", name="Изменить данные").click()
    page.shot("details-ru")
    assert "Ваши данные" in page.content()
