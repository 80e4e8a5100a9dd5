"""The back office's shared steps: a staff account to sign in with, a payment held on the live
sandbox through the shop's own pages, and what the sandbox and the shop each record of it."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from storefront.admin.models import StaffUser
from storefront.extensions import db
from storefront.orders.models import Order, OrderState
from storefront.payments.models import AttemptState, PaymentAttempt
from tests.browser import Browser, Form, Page
from tests.journeys import latest_order, pay_rbs, product, to_gateway

EMAIL = "operator@example.com"
PASSWORD = "correct horse battery staple"


def make_staff(app, email: str = EMAIL, password: str = PASSWORD, active: bool = True) -> None:
    with app.app_context():
        # An owner: these tests exercise every page and action, payments included.
        user = StaffUser(email=email, name="Olive Operator", active=active, role="owner")
        user.set_password(password)
        db.session.add(user)
        db.session.commit()


def held_on_the_sandbox(shop, price: int = 2500) -> tuple[Order, PaymentAttempt]:
    """A customer buys through the shop's pages and pays on the sandbox's page: a held payment."""
    _, slug = product(shop, name="Yirgacheffe", price=price, stock=5)
    customer = Browser()
    to_gateway(shop, customer, slug)
    page = pay_rbs(customer)
    assert page.url.startswith(shop.url + "/order/"), page.text
    order, attempts = latest_order(shop)
    assert order.state == OrderState.AUTHORIZED
    assert [(a.state, a.authorized, a.captured) for a in attempts] == [
        (AttemptState.AUTHORIZED, price, 0)
    ]
    return order, attempts[0]


def held_on_altapay(shop, price: int) -> tuple[Order, PaymentAttempt]:
    """A reservation on the AltaPay sandbox, paid through the shop's and the gateway's pages."""
    _, slug = product(shop, name="Sidamo", price=price, stock=5)
    customer = Browser()
    page = to_gateway(shop, customer, slug, gateway="altapay")
    page = customer.submit(
        page.form("requestForm"),
        cardno="4111111111111111",
        emonth="12",
        eyear="2034",
        cvc="123",
        cardholdername="Ann Example",
    )
    assert "Thank you" in page, page.text
    order, attempts = latest_order(shop)
    assert [(a.state, a.authorized) for a in attempts] == [(AttemptState.AUTHORIZED, price)]
    return order, attempts[0]


def at_the_sandbox(sandbox, reference: str) -> dict:
    """The sandbox's own record of the payment: what the gateway believes, not what we do."""
    return next(doc for doc in sandbox.state()["rbs_order"] if doc["orderNumber"] == reference)


def altapay_transaction(sandbox, reference: str) -> dict:
    """The AltaPay sandbox's own record of the payment's transaction."""
    return next(
        doc for doc in sandbox.state()["altapay_transaction"] if doc["shop_orderid"] == reference
    )


def shop_attempt(shop, attempt_id: int) -> tuple[str, int, int, int]:
    with shop.db() as session:
        attempt = session.get(PaymentAttempt, attempt_id)
        return attempt.state, attempt.authorized, attempt.captured, attempt.refunded


class _Response:
    """What tests.browser.Page reads, taken from a Flask test response."""

    def __init__(self, response):
        self.url = response.request.url
        self.status_code = response.status_code
        self.text = response.get_data(as_text=True)


class Back:
    """The back office through the Flask test client, filling in forms as shown (CSRF included)."""

    def __init__(self, client):
        self.client = client
        self.page: Page | None = None

    def get(self, path: str, **kwargs) -> Page:
        self.page = Page(_Response(self.client.get(path, follow_redirects=True, **kwargs)))
        return self.page

    def submit(self, form: Form, button: str | None = None, **values) -> Page:
        data = dict(form.fields)
        data.update({k: str(v) for k, v in values.items()})
        for b in form.buttons:
            if button is not None and (button in b["text"] or button == b["value"]) and b["name"]:
                data[b["name"]] = b["value"]
        target = urlsplit(urljoin(self.page.url, form.action or self.page.url))
        path = target.path + (f"?{target.query}" if target.query else "")
        if form.method == "POST":
            response = self.client.post(path, data=data, follow_redirects=True)
        else:
            response = self.client.get(path, query_string=data, follow_redirects=True)
        self.page = Page(_Response(response))
        return self.page

    def sign_in(self, email: str = EMAIL, password: str = PASSWORD, next: str = "") -> Page:
        page = self.get("/admin/sign-in" + (f"?next={next}" if next else ""))
        return self.submit(page.form("/admin/sign-in"), email=email, password=password)
