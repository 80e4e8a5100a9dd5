"""The back office's shared steps: a staff account to sign in with, a payment held on the live
sandbox through the shop's own pages, and what the sandbox and the shop each record of it."""

from __future__ import annotations

from storefront.admin.models import StaffUser
from storefront.extensions import db
from storefront.orders.models import Order, OrderState
from storefront.payments.models import AttemptState, PaymentAttempt
from tests.browser import Browser
from tests.journeys import latest_order, pay_rbs, product, to_gateway

EMAIL = "operator@example.com"
PASSWORD = "correct horse battery staple"


def make_staff(app, email: str = EMAIL, password: str = PASSWORD, active: bool = True) -> None:
    with app.app_context():
        user = StaffUser(email=email, name="Olive Operator", active=active)
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


def at_the_sandbox(sandbox, reference: str) -> dict:
    """The sandbox's own record of the payment: what the gateway believes, not what we do."""
    return next(doc for doc in sandbox.state()["rbs_order"] if doc["orderNumber"] == reference)


def shop_attempt(shop, attempt_id: int) -> tuple[str, int, int, int]:
    with shop.db() as session:
        attempt = session.get(PaymentAttempt, attempt_id)
        return attempt.state, attempt.authorized, attempt.captured, attempt.refunded
