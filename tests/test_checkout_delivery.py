"""Delivery at checkout: chosen after the address among the methods serving its country, shown
with the VAT per rate on the review and the receipt, in the amount the gateway is asked for,
never charged at a price the customer did not see; and managed in the back office."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storefront.admin.models import AuditEntry, Role
from storefront.checkout.models import DeliveryMethod
from storefront.orders.models import Order
from tests.back_office import CLERK, PASSWORD, make_account
from tests.browser import Browser
from tests.journeys import (
    CUSTOMER,
    add_to_cart,
    coffee_and_book,
    latest_order,
    pay_rbs,
    product,
    review,
    words,
)


def methods(shop, *rows: tuple[str, int, int | None, str]) -> dict[str, int]:
    """Delivery methods ``(name, price, free_over, countries)`` in this order; their ids."""
    with shop.db() as session:
        made = [
            DeliveryMethod(name=n, price=p, free_over=f, countries=c, position=i)
            for i, (n, p, f, c) in enumerate(rows)
        ]
        session.add_all(made)
        session.commit()
        return {m.name: m.id for m in made}


DEMO = (
    ("Standard post", 495, 5000, "IE,GB"),
    ("Express courier", 995, None, "IE,GB"),
    ("EU post", 1295, 15000, "DE,FR"),
)


def order_count(shop) -> int:
    with shop.db() as session:
        return len(session.execute(select(Order.id)).all())


def _customer(**changes) -> dict:
    return {**CUSTOMER, **changes}


def test_the_chosen_delivery_is_on_the_review_in_the_order_and_in_the_amount_asked(shop, sandbox):
    ids = methods(shop, *DEMO)
    coffee, book = coffee_and_book(shop)
    browser = Browser()
    add_to_cart(shop, browser, coffee)
    add_to_cart(shop, browser, book)

    page = browser.get(f"{shop.url}/checkout/")
    page = browser.submit(page.form("/checkout/"), gateway="rbs", **_customer())
    assert page.url.endswith("/checkout/delivery")
    # Ireland's methods only, with their price; the cheapest is chosen for the customer.
    assert "Standard post: €4.95" in words(page) and "Express courier: €9.95" in words(page)
    assert "EU post" not in page
    assert "€4.95" in page and "€9.95" in page
    assert page.form("/checkout/delivery").fields["method"] == str(ids["Standard post"])

    page = browser.submit(page.form("/checkout/delivery"), method=ids["Express courier"])
    assert page.url.endswith("/checkout/review")
    text = words(page)
    assert "Subtotal €31.35" in text and "Delivery: Express courier €9.95" in text
    assert "Total €41.30" in text
    # 23 % of the coffee and the delivery (29.95 → 5.60); 13.5 % of the book (11.35 → 1.35).
    assert "of which VAT 23 % €5.60" in text and "of which VAT 13.5 % €1.35" in text

    page = browser.submit(page.form("/checkout/place"))
    order, [attempt] = latest_order(shop)
    assert order.total == 2000 + 1135 + 995
    assert (order.delivery_name, order.delivery_price) == ("Express courier", 995)
    [sent] = sandbox.state()["rbs_order"]
    assert sent["amount"] == order.total
    assert sent["basket"][-1]["name"] == "Express courier"

    receipt = words(pay_rbs(browser))
    assert "Delivery: Express courier €9.95" in receipt and "Total €41.30" in receipt
    assert "of which VAT 23 % €5.60" in receipt and "of which VAT 13.5 % €1.35" in receipt
    assert "Storefront Ltd" in receipt and "IE1234567T" in receipt


def test_delivery_is_free_when_the_basket_reaches_the_threshold(shop, sandbox):
    ids = methods(shop, *DEMO)
    _, slug = product(shop, name="Grinder", price=5000)
    browser = Browser()
    add_to_cart(shop, browser, slug)
    page = browser.get(f"{shop.url}/checkout/")
    page = browser.submit(page.form("/checkout/"), gateway="rbs", **_customer())
    assert "Standard post: Free" in words(page)
    assert page.form("/checkout/delivery").fields["method"] == str(ids["Standard post"])

    page = browser.submit(page.form("/checkout/delivery"))
    assert "Delivery: Standard post Free" in words(page)
    browser.submit(page.form("/checkout/place"))
    order, _ = latest_order(shop)
    assert (order.delivery_name, order.delivery_price, order.total) == ("Standard post", 0, 5000)
    assert sandbox.state()["rbs_order"][0]["amount"] == 5000


def test_a_country_no_method_serves_cannot_order_until_the_address_changes(shop):
    methods(shop, *DEMO)
    _, slug = product(shop)
    browser = Browser()
    add_to_cart(shop, browser, slug)
    page = browser.get(f"{shop.url}/checkout/")
    page = browser.submit(page.form("/checkout/"), gateway="rbs", **_customer(country="US"))
    assert "we do not deliver to United States" in words(page)
    assert not [f for f in page.forms if "/checkout/delivery" in f.action]
    # The review is not reachable, nor is placing.
    assert browser.get(f"{shop.url}/checkout/review").url.endswith("/checkout/delivery")
    assert order_count(shop) == 0

    # Another address: the choice is there again.
    page = review(shop, browser, country="DE")
    assert "Delivery: EU post €12.95" in words(page)


def test_a_price_changed_between_review_and_place_is_not_charged(shop, sandbox):
    ids = methods(shop, *DEMO)
    _, slug = product(shop, price=1000)
    browser = Browser()
    add_to_cart(shop, browser, slug)
    page = review(shop, browser)
    assert "Delivery: Standard post €4.95" in words(page)

    with shop.db() as session:
        session.get(DeliveryMethod, ids["Standard post"]).price = 595
        session.commit()
    page = browser.submit(page.form("/checkout/place"))
    assert page.url.endswith("/checkout/delivery")
    assert "The price of Standard post is now €5.95" in words(page)
    assert order_count(shop) == 0 and not sandbox.state().get("rbs_order")

    # Seen and chosen again: placed at the new price.
    page = browser.submit(page.form("/checkout/delivery"))
    assert "Delivery: Standard post €5.95" in words(page)
    browser.submit(page.form("/checkout/place"))
    order, _ = latest_order(shop)
    assert order.total == 1000 + 595


def test_a_place_form_showing_another_price_is_not_placed(shop):
    # The review's page says what was shown: a form from an older review (another tab) that
    # showed a different price is sent back, even though the session's choice is current.
    methods(shop, *DEMO)
    _, slug = product(shop, price=1000)
    browser = Browser()
    add_to_cart(shop, browser, slug)
    place = review(shop, browser).form("/checkout/place")
    page = browser.submit(place, delivery_price="0")
    assert page.url.endswith("/checkout/delivery")
    assert "The delivery price has changed" in page.text
    assert order_count(shop) == 0


def test_a_method_deactivated_after_the_review_sends_the_customer_back_to_choose(shop):
    ids = methods(shop, *DEMO)
    _, slug = product(shop, price=1000)
    browser = Browser()
    add_to_cart(shop, browser, slug)
    page = review(shop, browser, method=ids["Express courier"])
    with shop.db() as session:
        session.get(DeliveryMethod, ids["Express courier"]).active = False
        session.commit()
    page = browser.submit(page.form("/checkout/place"))
    assert page.url.endswith("/checkout/delivery")
    assert "no longer available" in page.text and "Express courier" not in page.text
    assert order_count(shop) == 0


# The back office ---------------------------------------------------------------------------
def staff_browser(shop) -> Browser:
    make_account(shop.app, CLERK, Role.STAFF)
    office = Browser()
    page = office.get(f"{shop.url}/admin/sign-in")
    page = office.submit(page.form("/admin/sign-in"), email=CLERK, password=PASSWORD)
    assert "Signed in" in page, page.text
    return office


def test_staff_add_a_method_with_clear_errors_and_it_is_offered_at_checkout(shop):
    office = staff_browser(shop)
    page = office.get(f"{shop.url}/admin/delivery/new")
    form = page.form("/admin/delivery/new")
    page = office.submit(form, name="", price="cheap", free_over="-3", countries="IE, XX, EU")
    assert page.status == 422
    assert "This field is required." in page.text
    assert "Type the price in EUR as a plain number" in page.text
    assert "The threshold cannot be negative." in page.text
    assert "Not a country code: XX, EU." in page.text
    with shop.db() as session:
        assert not session.execute(select(DeliveryMethod)).scalars().all()

    form = page.form("/admin/delivery/new")
    page = office.submit(
        form, name="Bike courier", price="3.50", free_over="", countries="ie , gb", position="2"
    )
    assert page.status == 200 and page.url.endswith("/admin/delivery")
    assert "Bike courier" in page and "€3.50" in page
    with shop.db() as session:
        [made] = session.execute(select(DeliveryMethod)).scalars().all()
        assert (made.price, made.free_over, made.countries, made.active) == (
            350,
            None,
            "IE,GB",
            True,
        )
        entry = session.execute(select(AuditEntry).order_by(AuditEntry.id.desc())).scalars().first()
        assert (entry.actor, entry.action, entry.subject) == (
            CLERK,
            "delivery method created",
            "Bike courier",
        )
        method_id = made.id

    _, slug = product(shop, price=1000)
    customer = Browser()
    add_to_cart(shop, customer, slug)
    page = review(shop, customer)
    assert "Delivery: Bike courier €3.50" in words(page)

    # Edited: bad input is a form error; a good one is what the next customer sees.
    page = office.get(f"{shop.url}/admin/delivery/{method_id}")
    form = page.form(f"/admin/delivery/{method_id}")
    assert (form.fields["price"], form.fields["countries"]) == ("3.50", "IE,GB")
    page = office.submit(form, price="3.505", free_over="99999999999999", position="many")
    assert page.status == 422 and "Type the price in EUR" in page.text
    assert "The threshold is too large." in page.text and "Not a valid integer value." in page.text
    page = office.submit(
        page.form(f"/admin/delivery/{method_id}"), price="4", free_over="9.00", position="1"
    )
    assert page.url.endswith("/admin/delivery") and "€4.00" in page and "€9.00" in page
    page = review(shop, customer)
    assert "Delivery: Bike courier Free" in words(page)  # the cart is 10.00


def test_the_delivery_pages_need_a_signed_in_member_of_staff(shop):
    anonymous = Browser()
    for path in ("/admin/delivery", "/admin/delivery/new"):
        assert "/admin/sign-in" in anonymous.get(f"{shop.url}{path}").url


@pytest.mark.browser
def test_delivery_chosen_in_chromium_without_javascript_is_on_the_receipt(page, shop, sandbox):
    methods(shop, *DEMO)
    _, slug = product(shop, name="Kenya AA", price=1450, stock=4)
    page.goto(f"{shop.url}/p/{slug}")
    page.get_by_role("button", name="Add to cart").click()
    page.get_by_role("link", name="Checkout").click()
    for field in ("email", "name", "address", "city", "postcode"):
        page.fill(f"#{field}", CUSTOMER[field])
    page.select_option("#country", CUSTOMER["country"])
    page.check("#terms")
    page.get_by_role("button", name="Review your order").click()

    assert page.url == f"{shop.url}/checkout/delivery"
    assert page.get_by_label("Standard post: €4.95").is_checked()  # the cheapest
    page.get_by_label("Express courier: €9.95").check()
    page.shot("delivery")
    page.get_by_role("button", name="Review your order").click()
    assert page.url == f"{shop.url}/checkout/review"
    page.shot("review")
    assert "Delivery: Express courier" in page.inner_text("table.summary")
    page.get_by_role("button", name="Continue to secure payment").click()

    page.fill("#pan", "4111111111111111")
    page.fill("#expiry", "12/34")
    page.fill("#cvc", "123")
    page.fill("#cardholder", "Ann Example")
    page.get_by_role("button", name="Pay").click()
    assert page.url.startswith(f"{shop.url}/order/")
    page.shot("receipt")
    summary = page.inner_text("table.summary")
    assert "Express courier" in summary and "€24.45" in summary
    assert latest_order(shop)[0].total == 1450 + 995
