"""Journeys that used to end badly, walked in Chromium with JavaScript off: whatever happens at
the gateway, the customer is never offered to pay twice and never left without a way on.

Screenshots of every step are kept in test-artifacts/ for people to look at.
"""

from __future__ import annotations

import pytest

from storefront.orders.models import OrderState
from tests.journeys import latest_order, product, wait_for
from tests.test_browser_journey import checkout_in_chromium, pay_in_chromium

pytestmark = pytest.mark.browser


def test_lines_of_an_order_paid_by_try_again_leave_the_cart(page, shop, sandbox):
    _, slug = product(shop, name="Sencha", price=900, stock=3)
    checkout_in_chromium(page, shop, slug)
    pay_in_chromium(page, "4000000000000002")  # declined: the lines come back to the cart
    page.shot("declined")
    page.goto(f"{shop.url}/cart/")
    assert "Sencha" in page.content()
    page.go_back()
    page.get_by_role("button", name="Try again").click()
    pay_in_chromium(page, "4111111111111111")
    page.shot("paid")
    assert "Thank you, your payment was received" in page.content()

    page.goto(f"{shop.url}/cart/")
    page.shot("cart-after-payment")
    assert "Your cart is empty" in page.content()
    assert page.locator(".cart-count").inner_text() == "0"
    page.goto(f"{shop.url}/checkout/review")  # nothing left to buy a second time
    assert page.url == f"{shop.url}/cart/"


def pay_altapay_in_chromium(page, card: str = "4111111111111111") -> None:
    page.fill("#cardno", card)
    page.fill("#emonth", "12")
    page.fill("#eyear", "34")
    page.fill("#cvc", "123")
    page.fill("#cardholdername", "Ann Example")
    page.locator('button[value="pay"]').click()


def test_a_relayed_pending_page_reaches_the_receipt_with_its_refresh_stripped(
    page, make_shop, sandbox
):
    """AltaPay relays our pending page from its own origin, scripts and meta refresh stripped,
    and here its notification never comes: the customer's "Check again" asks the gateway."""
    shop = make_shop(GATEWAYS="altapay")
    sandbox.settings(**{"altapay:open_delay": 0.2, "delivery:altapay": "drop"})
    _, slug = product(shop, name="Kenya AA", price=1268, stock=3)  # .68: the gateway says Open
    checkout_in_chromium(page, shop, slug)
    pay_altapay_in_chromium(page)
    page.shot("relayed-pending")
    assert page.url.startswith(sandbox.url)  # the gateway's address, our page
    assert page.get_by_role("heading", level=1).inner_text() == "Waiting for the bank"
    assert page.locator('meta[http-equiv="refresh"]').count() == 0
    assert "checks again by itself" not in page.content()

    def finished_at_the_gateway() -> bool:
        return any(t.get("status") == "preauth" for t in sandbox.state()["altapay_transaction"])

    assert wait_for(finished_at_the_gateway)
    page.get_by_role("button", name="Check again").click()
    page.shot("receipt")
    order, _ = latest_order(shop)
    assert page.url.rstrip("?") == f"{shop.url}/order/{order.receipt_token}"
    assert page.get_by_role("heading", level=1).inner_text() == (
        "Thank you, your order is confirmed"
    )
    assert order.state == OrderState.AUTHORIZED


def test_back_from_the_gateway_unpaid_the_cart_says_the_order_waits_and_offers_a_way_on(
    page, shop, sandbox
):
    product_id, slug = product(shop, name="Darjeeling", price=800, stock=5)
    checkout_in_chromium(page, shop, slug)
    assert page.url.startswith(sandbox.url)  # the gateway's page
    page.wait_for_load_state()
    page.go_back()  # the browser's Back: the review page, which sends an empty cart home
    page.shot("back-from-the-gateway")
    order, _ = latest_order(shop)
    assert page.url == f"{shop.url}/cart/"
    assert f"Order {order.number} is waiting for payment." in page.content()

    page.get_by_role("link", name="Continue to payment").click()
    page.wait_for_load_state()
    assert page.url.startswith(sandbox.url)  # the same payment, where the customer left it
    page.goto(f"{shop.url}/cart/")
    page.get_by_role("button", name="Change the order").click()
    page.shot("order-changed")
    assert page.url == f"{shop.url}/cart/"
    assert f"Order {order.number} is cancelled and its items are back in your cart" in (
        page.content()
    )
    assert "Darjeeling" in page.locator(".cart-table").inner_text()
    assert "is waiting for payment" not in page.content()
    changed, attempts = latest_order(shop)
    assert changed.state == OrderState.CANCELLED
    assert [a.state for a in attempts] == ["cancelled"]
    with shop.db() as session:
        from storefront.catalogue.models import Product

        assert session.get(Product, product_id).stock == 5  # its stock went back


def test_an_order_paid_in_another_tab_is_not_changed_back_into_the_cart(page, shop, sandbox):
    """The customer pays in one tab, then presses "Change the order" on a cart page left open
    in another: the shop asks the gateway first, and the paid order stays paid."""
    _, slug = product(shop, name="Assam", price=650, stock=5)
    checkout_in_chromium(page, shop, slug)
    gateway_page = page.url
    page.wait_for_load_state()
    page.go_back()
    assert "is waiting for payment" in page.content()
    other = page.context.new_page()
    other.shot = page.shot
    other.goto(gateway_page)
    pay_in_chromium(other, "4111111111111111")
    assert "Thank you, your payment was received" in other.content()
    page.get_by_role("button", name="Change the order").click()
    page.shot("after-paying-elsewhere")
    order, _ = latest_order(shop)
    assert order.state == OrderState.PAID
    assert page.url == f"{shop.url}/order/{order.receipt_token}"
    assert "Thank you, your payment was received" in page.content()
    page.goto(f"{shop.url}/cart/")
    assert "Your cart is empty" in page.content()


def test_an_order_is_found_from_the_footer_by_the_reference_the_gateway_showed(
    page, make_shop, sandbox
):
    shop = make_shop(GATEWAYS="altapay")
    _, slug = product(shop, name="Kenya AA", price=1250, stock=3)
    checkout_in_chromium(page, shop, slug)
    pay_altapay_in_chromium(page)
    order, attempts = latest_order(shop)
    shown = attempts[0].reference  # what the gateway's pages call the payment: "N_1"
    assert shown != order.number and shown.startswith(order.number)

    fresh = page.context.new_page()  # another day: the customer has only the gateway's mail
    fresh.goto(f"{shop.url}/")
    fresh.get_by_role("link", name="Find your order").click()
    fresh.fill("#number", f"  order {shown.lower()} ")
    fresh.fill("#email", "ANN@example.com")
    fresh.screenshot(path=str(page.shot("before-lookup").with_name("lookup.png")), full_page=True)
    fresh.get_by_role("button", name="Find order").click()
    assert fresh.url == f"{shop.url}/order/{order.receipt_token}"
    assert order.number in fresh.content()


def test_the_details_form_reads_like_a_shop_and_says_what_to_fix(page, make_shop, sandbox):
    shop = make_shop(GATEWAYS="rbs,altapay", ALTAPAY_METHOD_NAME="Card or MobilePay")
    _, slug = product(shop, name="Sencha", price=900, stock=3)
    page.goto(f"{shop.url}/p/{slug}")
    page.get_by_role("button", name="Add to cart").click()
    page.get_by_role("link", name="Checkout").click()
    page.shot("details")
    assert page.locator("#country option:checked").inner_text() == "Ireland"
    countries = page.locator("#country option").all_inner_texts()
    for aggregate in ("Afghanistan", "Ireland", "Germany"):
        assert aggregate in countries
    for pseudo in ("Eurozone", "European Union", "Unknown Region", "Pseudo-Accents", "world"):
        assert pseudo not in countries
    labels = page.locator("fieldset:has(input[name=gateway]) .choice label").all_inner_texts()
    assert labels == ["Card", "Card or MobilePay"]
    assert "Card (AltaPay)" not in page.content()
    assert "processed by AltaPay" in page.content()

    page.fill("#email", "not-an-address")
    page.get_by_role("button", name="Review your order").click()
    page.shot("details-errors")
    summary = page.locator(".error-summary")
    assert summary.get_by_role("heading").inner_text().startswith("Please check these")
    summary.get_by_role("link", name="Email: Invalid email address.").click()
    assert page.url.endswith("#email")
    assert summary.get_by_role("link").count() >= 6  # each field to fix, linked
