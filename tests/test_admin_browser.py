"""An operator in Chromium with JavaScript off: sign in, open an order, capture its held payment.

Screenshots of every step are kept in test-artifacts/ for people to look at.
"""

from __future__ import annotations

import pytest

from storefront.orders.models import Order, OrderState
from storefront.payments.models import AttemptState
from tests.admin_steps import (
    EMAIL,
    PASSWORD,
    at_the_sandbox,
    held_on_the_sandbox,
    make_staff,
    shop_attempt,
)

pytestmark = pytest.mark.browser


def test_operator_in_chromium_signs_in_and_captures_a_held_payment(page, make_shop, sandbox):
    shop = make_shop(RBS_TWO_PHASE=True)
    order, attempt = held_on_the_sandbox(shop, price=3200)
    make_staff(shop.app)

    page.goto(f"{shop.url}/admin/orders/{order.number}")
    assert "/admin/sign-in?next=" in page.url  # signed out: sent to sign in, not a 404
    page.shot("sign-in")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    assert page.url == f"{shop.url}/admin/orders/{order.number}"  # back where we asked to go
    assert page.get_by_role("heading", name=f"Order {order.number}").is_visible()
    page.shot("order-held")

    # What does the gateway say? Asking changes nothing; the held payment is still to capture.
    page.get_by_role("link", name="Open payments").click()
    page.get_by_role("button", name="Check with gateway").click()
    assert page.get_by_role("status").filter(has_text="the gateway says authorized").is_visible()
    page.shot("open-payments-asked")
    page.get_by_role("link", name=order.number).click()

    amount = page.get_by_label("Amount to capture (EUR)")
    assert amount.input_value() == "32.00"  # the whole hold, by default
    amount.fill("30.00")
    page.get_by_role("button", name="Capture", exact=True).click()

    assert page.get_by_role("status").filter(has_text="Capture of €30.00 done").is_visible()
    assert shop_attempt(shop, attempt.id) == (AttemptState.PAID, 3200, 3000, 0)
    assert at_the_sandbox(sandbox, attempt.reference)["depositedAmount"] == 3000
    with shop.db() as session:
        assert session.get(Order, order.id).state == OrderState.PAID
    page.shot("captured")

    # The evidence's detail opens without JavaScript: <details> is plain HTML.
    detail = page.locator(f"#payment-{attempt.id} table.evidence details").last
    detail.locator("summary").click()
    assert detail.locator("pre").is_visible()
    page.shot("evidence-detail")

    page.get_by_role("link", name="Orders", exact=True).click()
    assert page.get_by_role("link", name=order.number).is_visible()
    page.shot("orders")
    page.get_by_role("link", name="Open payments").click()
    assert "No payment is open" in page.content()

    page.get_by_role("button", name="Sign out").click()
    assert "You are signed out." in page.content()
    page.goto(f"{shop.url}/admin/orders")
    assert "/admin/sign-in" in page.url
