"""The customer journey on InterPay web-redirect: StartSession, the browser's return, GetResult,
and the Ack without which the gateway reverses the payment after three minutes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from storefront.orders.models import OrderState
from storefront.payments.models import AttemptState, PaymentAttempt
from tests.browser import Browser
from tests.journeys import latest_order, pay_interpay, product, to_gateway

scenario = pytest.mark.scenario


@pytest.fixture
def interpay_shop(make_shop):
    # The sandbox's InterPay terminal charges CAD, like a real one: so does this shop.
    return make_shop(GATEWAYS="interpay", CURRENCY="CAD")


def sessions(sandbox) -> list[dict]:
    return sandbox.state().get("interpay_session", [])


def reconcile(shop, older_than: float = 60):
    with shop.app.app_context():
        from storefront.extensions import db
        from storefront.payments.reconciler import reconcile as run

        counts = run(older_than=older_than)
        db.session.remove()
        return counts


def age_attempts(shop, seconds: float):
    """Move the shop's view of time: its attempts were handed off ``seconds`` earlier."""
    with shop.db() as session:
        for attempt in session.query(PaymentAttempt).all():
            session.execute(
                update(PaymentAttempt)
                .where(PaymentAttempt.id == attempt.id)
                .values(created_at=attempt.created_at - timedelta(seconds=seconds))
            )
        session.commit()


@scenario(
    "InterPay: approved → GetResult, then Ack → paid only on the confirmed capture",
    gateway="interpay",
)
def test_approved_payment_is_acknowledged_and_paid(interpay_shop, sandbox):
    _, slug = product(interpay_shop, price=2500)
    browser = Browser()
    to_gateway(interpay_shop, browser, slug, gateway="interpay")
    page = pay_interpay(browser)
    assert "Thank you, your payment was received" in page
    order, attempts = latest_order(interpay_shop)
    assert order.state == OrderState.PAID
    assert attempts[0].state == AttemptState.PAID and attempts[0].captured == 2500
    [session] = sessions(sandbox)
    assert (session["state"], session["acked"]) == ("captured", "Y")  # the gateway agrees


def test_declined_card_shows_the_failure_page(interpay_shop, sandbox):
    _, slug = product(interpay_shop)
    browser = Browser()
    to_gateway(interpay_shop, browser, slug, gateway="interpay")
    page = pay_interpay(browser, card="4000000000000002")
    assert "Your payment was not completed" in page
    assert latest_order(interpay_shop)[1][0].state == AttemptState.DECLINED


def test_cancel_on_the_payment_page(interpay_shop, sandbox):
    _, slug = product(interpay_shop)
    browser = Browser()
    to_gateway(interpay_shop, browser, slug, gateway="interpay")
    page = pay_interpay(browser, action="cancel")
    assert "Your payment was not completed" in page
    assert latest_order(interpay_shop)[1][0].state == AttemptState.CANCELLED


def test_customer_who_timed_out_on_the_page(interpay_shop, sandbox):
    _, slug = product(interpay_shop)
    browser = Browser()
    to_gateway(interpay_shop, browser, slug, gateway="interpay")
    sandbox.advance(901)  # longer than the hosted page waits for the customer
    page = pay_interpay(browser)
    assert "Your payment was not completed" in page
    assert latest_order(interpay_shop)[1][0].state == AttemptState.EXPIRED


@scenario(
    "InterPay: the customer pays and closes the tab → the reconciler captures it once",
    gateway="interpay",
)
def test_browser_that_never_returns_is_resolved_by_the_reconciler(interpay_shop, sandbox):
    _, slug = product(interpay_shop)
    browser = Browser()
    to_gateway(interpay_shop, browser, slug, gateway="interpay")
    response = pay_interpay(browser, follow=False)
    assert response.status_code == 303  # the browser is sent back, and never arrives

    assert reconcile(interpay_shop)["checked"] == 0  # too early: the customer may be paying
    age_attempts(interpay_shop, 160)
    reconcile(interpay_shop)
    assert reconcile(interpay_shop)["checked"] == 0  # nothing left to do: no second Ack

    order, attempts = latest_order(interpay_shop)
    assert order.state == OrderState.PAID and attempts[0].state == AttemptState.PAID


@scenario(
    "InterPay: the Ack never reaches the gateway → reversed after 3 minutes; the order "
    "is not paid and nothing is charged",
    gateway="interpay",
)
def test_lost_ack_ends_reversed_not_paid(interpay_shop, sandbox):
    for server in ("svra", "svrb"):
        sandbox.arm("interpay", f"{server}:Ack", "http_503", count=5)
    _, slug = product(interpay_shop)
    browser = Browser()
    to_gateway(interpay_shop, browser, slug, gateway="interpay")
    page = pay_interpay(browser)
    assert "Thank you" not in page
    _, attempts = latest_order(interpay_shop)
    assert attempts[0].state == AttemptState.AUTHORIZED
    assert attempts[0].action == "acknowledge"  # claimed: the outcome is unknown

    sandbox.advance(181)  # the Ack window closes: the gateway reverses the authorization
    age_attempts(interpay_shop, 200)
    with interpay_shop.db() as session:  # the claim is old enough for the reconciler
        session.execute(
            update(PaymentAttempt).values(
                action_at=PaymentAttempt.created_at, checked_at=PaymentAttempt.created_at
            )
        )
        session.commit()
    reconcile(interpay_shop)

    order, attempts = latest_order(interpay_shop)
    assert attempts[0].state == AttemptState.VOIDED
    assert attempts[0].action is None
    assert order.state == OrderState.PENDING_PAYMENT  # payable again; nothing was charged


@scenario("InterPay: six browser returns at once → one Ack, one capture", gateway="interpay")
def test_returns_at_once_send_one_ack(interpay_shop, sandbox):
    from concurrent.futures import ThreadPoolExecutor

    import requests
    from sqlalchemy import select

    from storefront.payments.models import PaymentEvent

    _, slug = product(interpay_shop)
    browser = Browser()
    to_gateway(interpay_shop, browser, slug, gateway="interpay")
    back = pay_interpay(browser, follow=False).headers["Location"]

    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda _: requests.get(back, timeout=30).status_code, range(6)))

    assert codes == [200] * 6
    order, attempts = latest_order(interpay_shop)
    assert order.state == OrderState.PAID
    with interpay_shop.db() as session:
        requests_sent = (
            session.execute(
                select(PaymentEvent.detail).where(
                    PaymentEvent.attempt_id == attempts[0].id,
                    PaymentEvent.kind == "request",
                )
            )
            .scalars()
            .all()
        )
    with interpay_shop.db() as session:
        trail = session.execute(
            select(PaymentEvent.kind, PaymentEvent.summary)
            .where(PaymentEvent.attempt_id == attempts[0].id)
            .order_by(PaymentEvent.id)
        ).all()
    assert sum('"ACTION": "Ack"' in detail for detail in requests_sent) == 1, "\n".join(
        f"{k}: {s}" for k, s in trail
    )
    assert [(s["state"], s["acked"]) for s in sessions(sandbox)] == [("captured", "Y")]


def test_interpay_is_refused_when_the_terminal_currency_is_not_the_shops(make_shop):
    from storefront.config import ConfigError

    with pytest.raises(ConfigError, match="InterPay"):
        make_shop(GATEWAYS="interpay", CURRENCY="EUR", INTERPAY_CURRENCY="CAD")
