"""A customer's steps through the shop, as plain functions over real HTTP (tests/browser.py)."""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin

from sqlalchemy import select

from storefront.orders.models import Order
from storefront.payments.models import PaymentAttempt
from tests.browser import Browser, Page
from tests.factories import make_product

CUSTOMER = {
    "email": "ann@example.com",
    "name": "Ann Example",
    "address": "1 Main Street",
    "city": "Dublin",
    "postcode": "D01 F5P2",
    "country": "IE",
    "terms": "y",
}
APPROVE = "4111111111111111"


def product(shop, **values):
    with shop.db():
        made = make_product(**values)
        return made.id, made.slug


def coffee_and_book(shop) -> tuple[str, str]:
    """A standard-rate coffee at 20.00 and a reduced-rate book at 11.35; their slugs."""
    with shop.db() as session:
        coffee = make_product("Coffee", price=2000)
        book = make_product("Book", price=1135)
        book.tax_class = "reduced"
        session.commit()
        return coffee.slug, book.slug


def words(page: Page | str) -> str:
    """A page's (or a mail's) text as read: tags dropped, entities decoded, white space
    collapsed."""
    text = page if isinstance(page, str) else page.text
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


def to_gateway(shop, browser: Browser, slug: str, quantity: int = 1, gateway: str = "rbs") -> Page:
    """Product page → cart → details → review → "Continue to secure payment": the gateway's page."""
    add_to_cart(shop, browser, slug, quantity)
    return checkout(shop, browser, gateway)


def add_to_cart(shop, browser: Browser, slug: str, quantity: int = 1) -> Page:
    """Product page → "Add to cart" with ``quantity``."""
    page = browser.get(f"{shop.url}/p/{slug}")
    assert page.status == 200, page.text
    page = browser.submit(page.form("/cart/add"), quantity=quantity)
    assert page.status == 200, page.text
    return page


def checkout(shop, browser: Browser, gateway: str = "rbs", **details) -> Page:
    """The cart as it is → details → delivery (the preselected method, where the shop has
    delivery methods) → review → "Continue to secure payment": the gateway's page."""
    return browser.submit(review(shop, browser, gateway, **details).form("/checkout/place"))


def review(shop, browser: Browser, gateway: str = "rbs", method: int | None = None, **details):
    """The cart as it is → details (``CUSTOMER``, with ``details`` typed over) → delivery
    (``method``, or the one preselected) → the review page."""
    page = browser.get(f"{shop.url}/checkout/")
    page = browser.submit(page.form("/checkout/"), gateway=gateway, **{**CUSTOMER, **details})
    if page.url.endswith("/checkout/delivery"):
        choice = {} if method is None else {"method": method}
        page = browser.submit(page.form("/checkout/delivery"), **choice)
    assert "Review your order" in page and page.url.endswith("/checkout/review"), page.text
    return page


def basket_to_gateway(
    shop, browser: Browser, items: list[tuple[str, int]], gateway: str = "rbs"
) -> Page:
    """Each ``(slug, quantity)`` into the cart from its product page, then checkout as
    ``to_gateway``: the gateway's page."""
    for slug, quantity in items:
        add_to_cart(shop, browser, slug, quantity)
    return checkout(shop, browser, gateway)


def pay_rbs(browser: Browser, card: str = APPROVE, action: str = "pay") -> Page:
    """On the BPC/RBS page: type the card and press Pay (or Cancel); follow back to the shop."""
    form = browser.page.form(button="Cancel")
    return browser.submit(
        form, button=action, pan=card, expiry="12/34", cvc="123", cardholder="Ann Example"
    )


def pay_altapay(browser: Browser, card: str = APPROVE, action: str = "pay") -> Page:
    """On AltaPay's page: type the card and press Pay (or Cancel); follow back to the shop."""
    form = browser.page.form(button="Cancel payment")
    return browser.submit(
        form,
        button=action,
        cardno=card,
        emonth="12",
        eyear="2034",
        cvc="123",
        cardholdername="Ann Example",
    )


def pay_interpay(browser: Browser, card: str = APPROVE, action: str = "pay", follow: bool = True):
    """On InterPay's page: type the card and press Pay (or Cancel); follow back to the shop, or
    (``follow=False``) return the gateway's own answer to the press, redirect unfollowed."""
    form = browser.page.form(button="Cancel")
    values = dict(card_number=card, expiry="12/34", cvv="123", cardholder="Ann Example")
    if follow:
        return browser.submit(form, button=action, **values)
    return browser.http.post(
        urljoin(browser.page.url, form.action),
        data={**form.fields, "action": action, **values},
        allow_redirects=False,
        timeout=30,
    )


def latest_order(shop) -> tuple[Order, list[PaymentAttempt]]:
    with shop.db() as session:
        order = session.execute(select(Order).order_by(Order.id.desc())).scalars().first()
        attempts = list(order.attempts)
        session.expunge_all()
        return order, attempts


def wait_for(check, seconds: float = 15.0, step: float = 0.05):
    """Poll ``check`` until it returns something truthy, for at most ``seconds``; its last
    value either way (tests assert on it)."""
    import time

    deadline = time.monotonic() + seconds
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(step)
        value = check()
    return value


def evidence_of(shop, attempt_id: int) -> list[tuple[str, str]]:
    """An attempt's evidence as (kind, summary) pairs, oldest first."""
    from storefront.payments.models import PaymentEvent

    with shop.db() as session:
        rows = session.execute(
            select(PaymentEvent)
            .where(PaymentEvent.attempt_id == attempt_id)
            .order_by(PaymentEvent.id)
        ).scalars()
        return [(str(e.kind), e.summary) for e in rows]


def pay_without_coming_back(browser: Browser, card: str = "4111111111111111") -> str:
    """Pay on the gateway's page but do not follow it back: the return URL it sent us to."""
    form = browser.page.form(button="Cancel")
    response = browser.http.post(
        urljoin(browser.page.url, form.action or browser.page.url),
        data={
            **form.fields,
            "action": "pay",
            "pan": card,
            "expiry": "12/34",
            "cvc": "123",
            "cardholder": "Ann Example",
        },
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code in (302, 303), response.text
    return response.headers["Location"]


def mail_files(shop, pattern: str, seconds: float = 5.0) -> list:
    """The mails written for ``pattern`` (e.g. ``"123-order_confirmation-*.eml"``): sent once
    the answer has gone out, or else by the reconciler's next drain, which this runs then."""
    from pathlib import Path

    folder = Path(shop.app.instance_path) / "mail"
    if not wait_for(lambda: list(folder.glob(pattern)), seconds=seconds):
        from storefront.extensions import db
        from storefront.orders.mail import drain

        with shop.app.app_context():
            drain()
            db.session.remove()
    return sorted(folder.glob(pattern))
