"""Every customer page passes axe (the accessibility rules of browsers' developer tools), at a
desktop and a phone width, with a screenshot of each kept in test-artifacts/.

axe is a script, and the shop's pages carry none and forbid them (their CSP): it is run from
a tab whose JavaScript is on and whose CSP is bypassed for the check alone. The pages are the
same as with JavaScript off, where the journey tests walk them.
"""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from storefront.checkout.models import DeliveryMethod
from storefront.orders import paylink
from tests.conftest import ARTIFACTS
from tests.journeys import CUSTOMER, latest_order, product

pytestmark = pytest.mark.browser

WIDTHS = {"desktop": (1200, 900), "phone": (390, 844)}
AXE = Axe()


class Audit:
    """Visit pages in one tab; check each with axe and keep a screenshot."""

    def __init__(self, tab, folder):
        self.tab = tab
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.found: list[str] = []
        self.count = 0

    def check(self, name: str) -> None:
        self.count += 1
        self.tab.screenshot(path=str(self.folder / f"{self.count:02d}-{name}.png"), full_page=True)
        results = AXE.run(self.tab)
        for violation in results.response["violations"]:
            targets = [" ".join(node["target"]) for node in violation["nodes"]][:3]
            self.found.append(f"{name}: {violation['id']} ({violation['impact']}) at {targets}")

    def visit(self, url: str, name: str) -> None:
        self.tab.goto(url)
        self.check(name)


def walk(audit: Audit, shop, sandbox) -> None:
    """The customer's pages, from the home page to a receipt and a failure."""
    tab = audit.tab
    _, slug = product(shop, name="Ethiopia Yirgacheffe", price=1450, stock=4)
    _, few = product(shop, name="Kenya AA", price=1250, stock=2)
    with shop.db() as session:  # a delivery step: two ways to send the parcel to Ireland
        session.add_all(
            [
                DeliveryMethod(name="Standard post", price=495, free_over=5000, countries="IE"),
                DeliveryMethod(name="Express courier", price=995, free_over=None, countries="IE"),
            ]
        )
        session.commit()
    audit.visit(f"{shop.url}/", "home")
    tab.get_by_role("link", name="Coffee").first.click()
    audit.check("category")
    audit.visit(f"{shop.url}/search?q=kenya", "search")
    audit.visit(f"{shop.url}/search?q=nothing-like-it", "search-nothing")
    audit.visit(f"{shop.url}/cart/", "cart-empty")
    audit.visit(f"{shop.url}/p/{few}", "product-few-left")
    audit.visit(f"{shop.url}/p/{slug}", "product")
    tab.get_by_role("button", name="Add to cart").click()
    audit.check("cart")
    tab.get_by_role("link", name="Checkout").click()
    audit.check("details")
    tab.get_by_role("button", name="Review your order").click()
    audit.check("details-errors")
    for field in ("email", "name", "address", "city", "postcode"):
        tab.fill(f"#{field}", CUSTOMER[field])
    tab.check("#terms")
    tab.get_by_role("button", name="Review your order").click()
    assert tab.url.endswith("/checkout/delivery")
    audit.check("delivery")
    tab.locator("main form button[type=submit]").first.click()
    assert tab.url.endswith("/checkout/review")
    audit.check("review")
    tab.get_by_role("button", name="Continue to secure payment").click()
    tab.fill("#pan", "4000000000000002")  # declined
    tab.fill("#expiry", "12/34")
    tab.fill("#cvc", "123")
    tab.fill("#cardholder", "Ann Example")
    tab.get_by_role("button", name="Pay").click()
    audit.check("failure")
    failure = tab.url
    order, _ = latest_order(shop)
    with shop.app.app_context():
        token = paylink.token_for(order.number)
    audit.visit(f"{shop.url}/order/{order.number}/pay-now?token={token}", "pay-now")
    audit.visit(f"{shop.url}/order/{order.number}/pay-now?token=forged", "pay-now-invalid")
    audit.visit(f"{shop.url}/cart/", "cart-waiting-order")
    tab.goto(failure)
    tab.get_by_role("button", name="Try again").click()
    tab.fill("#pan", "4111111111111111")
    tab.fill("#expiry", "12/34")
    tab.fill("#cvc", "123")
    tab.fill("#cardholder", "Ann Example")
    tab.get_by_role("button", name="Pay").click()
    audit.check("receipt")
    audit.visit(f"{shop.url}/order/lookup", "lookup")
    order, _ = latest_order(shop)
    tab.fill("#number", "00000000")
    tab.fill("#email", order.email)
    tab.get_by_role("button", name="Find order").click()
    audit.check("lookup-not-found")
    for name in ("contact", "terms", "returns", "privacy"):
        audit.visit(f"{shop.url}/{name}", name)
    audit.visit(f"{shop.url}/p/no-such-product", "not-found")
    audit.visit(f"{shop.url}/language/de?next=/", "home-de")
    audit.visit(f"{shop.url}/language/ru?next=/cart/", "cart-ru")


@pytest.mark.parametrize("width", WIDTHS)
def test_every_customer_page_passes_axe(chromium, shop, sandbox, width, request):
    context = chromium.new_context(
        java_script_enabled=True,
        bypass_csp=True,
        viewport=dict(zip(("width", "height"), WIDTHS[width], strict=True)),
    )
    try:
        audit = Audit(context.new_page(), ARTIFACTS / request.node.name)
        walk(audit, shop, sandbox)
    finally:
        context.close()
    assert audit.found == []
    assert audit.count == 26  # every page above was reached and checked


def test_axe_does_find_what_is_wrong(chromium):
    """The check above can fail: axe, run the same way, finds a picture without alt text, an
    unlabelled field and a page without a language."""
    context = chromium.new_context(java_script_enabled=True, bypass_csp=True)
    try:
        tab = context.new_page()
        tab.set_content('<html><body><img src="x.png"><input name="q"></body></html>')
        found = {v["id"] for v in AXE.run(tab).response["violations"]}
    finally:
        context.close()
    assert {"image-alt", "label", "html-has-lang"} <= found
