"""The customer's mails, each sent once through the outbox, over real HTTP against the sandbox:
order received, payment failed with its "pay now" link, confirmation, refunded, cancelled and
expired; on SQLite and on PostgreSQL."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select, update

from storefront.extensions import db
from storefront.orders.mail import SUBJECTS
from storefront.orders.models import ORDER_MAILS, Order, OrderState, OutboxMessage
from storefront.payments import backoffice
from storefront.payments.models import AttemptState, PaymentAttempt
from storefront.payments.reconciler import reconcile
from storefront.timeutil import now_utc
from tests.browser import Browser
from tests.journeys import (
    latest_order,
    pay_rbs,
    pay_without_coming_back,
    product,
    to_gateway,
    wait_for,
)

scenario = pytest.mark.scenario

DECLINE = "4000000000000002"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request) -> str | None:
    """Each test on SQLite and on PostgreSQL: the database URL, None for the SQLite default."""
    return request.getfixturevalue("postgres_database") if request.param == "postgresql" else None


@pytest.fixture
def shop(make_shop, database):
    """The shop with the BPC/RBS gateway, on the database of this run of the test."""
    return make_shop(**({"DATABASE_URL": database} if database else {}))


EVERY_KIND = [
    *sorted(set(ORDER_MAILS.values())),
    "order_received",
    "payment_failed",
    "dispatched",
]


def mails(shop, number: str, key: str) -> list[EmailMessage]:
    """The mails of one outbox key (``refunded:2``) written for order ``number``, as sent."""
    folder = Path(shop.app.instance_path) / "mail"
    return [
        message_from_bytes(path.read_bytes(), policy=policy.default)
        for path in sorted(folder.glob(f"{number}-{key}-*.eml"))
    ]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return part.get_content()


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return part.get_content()


def outbox(shop, order_id: int) -> dict[str, bool]:
    """The order's outbox: each key, and whether it was sent."""
    with shop.db() as session:
        rows = session.execute(
            select(OutboxMessage).where(OutboxMessage.order_id == order_id)
        ).scalars()
        return {row.kind: row.sent_at is not None for row in rows}


def all_sent(shop, order_id: int, keys: set[str]) -> bool:
    box = outbox(shop, order_id)
    return set(box) == keys and all(box.values())


def pay_link(message: EmailMessage) -> str:
    match = re.search(r"Pay now: (\S+)", text_of(message))
    assert match, text_of(message)
    assert f'href="{match.group(1)}"' in html_of(message)  # the same link in both parts
    return match.group(1)


def declined(shop, slug: str) -> tuple[Order, str]:
    """An order placed and declined on the gateway's page; its "pay now" link, from the mail."""
    browser = Browser()
    to_gateway(shop, browser, slug)
    page = pay_rbs(browser, card=DECLINE)
    assert "Your payment was not completed" in page
    order, _ = latest_order(shop)
    assert wait_for(lambda: len(mails(shop, order.number, "payment_failed:1")) == 1)
    [mail] = mails(shop, order.number, "payment_failed:1")
    return order, pay_link(mail)


def deliveries_answered(sandbox, count: int) -> bool:
    """Whether the sandbox's callbacks have reached the shop ``count`` times, all answered."""
    jobs = sandbox.state()["delivery"]
    return sum(1 for job in jobs for t in job["tries"] if t.get("status") == 200) >= count


def refund(shop, attempt_id: int, amount: int) -> None:
    # Outside a request, as the admin's own request is gone by the time its mail is drained.
    with shop.app.app_context():
        attempt = db.session.get_one(PaymentAttempt, attempt_id)
        backoffice.refund(attempt, amount, "operator@example.com")
        db.session.remove()


def test_every_mail_has_a_subject_and_both_parts(app):
    folder = Path(app.root_path).parent / "templates" / "email"
    for kind in EVERY_KIND:
        assert kind in SUBJECTS
        assert (folder / f"{kind}.txt").is_file() and (folder / f"{kind}.html").is_file()


@scenario(
    "Declined, then paid from the 'pay now' link in the payment-failed mail, in another "
    "browser → the same order paid; received, failed and confirmation mails once each",
    gateway="rbs",
)
def test_pay_now_link_from_the_failure_mail_pays_the_same_order(shop, sandbox):
    product_id, slug = product(shop, name="Sencha", price=900, stock=3)
    order, link = declined(shop, slug)
    [received] = mails(shop, order.number, "order_received")
    assert received["Subject"] == f"Storefront: order {order.number} received"
    assert "Sencha" in text_of(received) and "we wait for your payment" in text_of(received)

    browser = Browser()  # the mail is read elsewhere: no session, no cart
    page = browser.get(link)
    assert page.status == 200
    assert f"Pay for order {order.number}" in page and "Sencha" in page
    page = browser.submit(page.form(button="Pay now"), gateway="rbs")
    page = pay_rbs(browser)

    assert "Thank you, your payment was received" in page
    again, attempts = latest_order(shop)
    assert again.id == order.id and again.state == OrderState.PAID
    assert [a.state for a in attempts] == [AttemptState.DECLINED, AttemptState.PAID]
    keys = {"order_received", "payment_failed:1", "order_confirmation"}
    assert wait_for(lambda: all_sent(shop, order.id, keys))
    assert [len(mails(shop, order.number, key)) for key in sorted(keys)] == [1, 1, 1]
    [confirmation] = mails(shop, order.number, "order_confirmation")
    assert "We have received your payment of €9.00" in text_of(confirmation)

    # The link again, once paid: the way to the receipt, and no new payment.
    page = browser.get(link)
    assert f"Order {order.number} is already paid" in page
    assert f"/order/{order.receipt_token}" in page
    assert "Pay now" not in page
    _, attempts = latest_order(shop)
    assert len(attempts) == 2


def test_the_failure_mail_shows_lines_totals_vat_seller_and_links(shop, sandbox):
    _, slug = product(shop, name="Kenya Nyeri", price=1250, stock=5)
    order, link = declined(shop, slug)
    [mail] = mails(shop, order.number, "payment_failed:1")
    assert mail["Subject"] == f"Storefront: order {order.number} not paid yet"
    text = text_of(mail)
    assert "1 x Kenya Nyeri at €12.50: €12.50" in text
    assert "Total: €12.50" in text
    assert "including VAT at 23 %: €2.34" in text  # 1250 × 23 / 123, half up
    assert "Storefront Ltd" in text and "VAT number IE1234567T" in text
    assert f"/order/{order.receipt_token}" in text and "/order/lookup" in text
    assert link.startswith(f"{shop.url}/order/{order.number}/pay-now?token=")
    html = html_of(mail)
    assert "Kenya Nyeri" in html and "including VAT at 23 %" in html and "Storefront Ltd" in html


def test_tampered_and_misdirected_pay_links_get_a_clear_400(shop, sandbox):
    _, slug = product(shop, stock=5)
    order, link = declined(shop, slug)
    other_browser = Browser()
    to_gateway(shop, other_browser, slug)  # a second order, waiting for payment
    other, _ = latest_order(shop)
    token = link.split("token=", 1)[1]
    browser = Browser()

    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for url in (
        f"{shop.url}/order/{order.number}/pay-now?token={forged}",
        f"{shop.url}/order/{order.number}/pay-now?token=nonsense",
        f"{shop.url}/order/{order.number}/pay-now",
        f"{shop.url}/order/{other.number}/pay-now?token={token}",  # the link of another order
    ):
        page = browser.get(url)
        assert page.status == 400, url
        assert "This payment link is not valid" in page and "/order/lookup" in page

    # Posting "Pay now" with the link of another order starts nothing either.
    form = browser.get(link).form(button="Pay now")
    answer = browser.http.post(
        f"{shop.url}/order/{other.number}/pay-now",
        data={**form.fields, "gateway": "rbs"},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 400
    with shop.db() as session:
        started = session.execute(
            select(PaymentAttempt.order_id).where(PaymentAttempt.order_id == other.id)
        ).all()
    assert len(started) == 1  # only the attempt its own checkout made


def test_an_expired_pay_link_gets_a_clear_410(make_shop, sandbox):
    shop = make_shop(PAY_LINK_MAX_AGE_HOURS=1 / 3600)  # one second
    _, slug = product(shop)
    order, link = declined(shop, slug)
    time.sleep(2.1)
    page = Browser().get(link)
    assert page.status == 410
    assert "This payment link has expired" in page and "/order/lookup" in page
    _, attempts = latest_order(shop)
    assert len(attempts) == 1


@scenario(
    "Declined, paid, refunded in part then in full, every callback of the sandbox delivered "
    "twice → each mail once: received, payment failed, confirmation, refunded ×2",
    gateway="rbs",
)
def test_each_mail_once_when_every_callback_arrives_twice(shop, sandbox):
    sandbox.settings(**{"delivery:rbs": "hold"})
    _, slug = product(shop, price=2000, stock=5)
    browser = Browser()
    to_gateway(shop, browser, slug)
    back = pay_without_coming_back(browser, card=DECLINE)
    sandbox.deliver(gateway="rbs", copies=2)
    assert wait_for(lambda: deliveries_answered(sandbox, 2))
    browser.get(back)
    order, _ = latest_order(shop)
    assert wait_for(lambda: all_sent(shop, order.id, {"order_received", "payment_failed:1"}))
    [mail] = mails(shop, order.number, "payment_failed:1")

    payer = Browser()
    page = payer.get(pay_link(mail))
    payer.submit(page.form(button="Pay now"), gateway="rbs")
    back = pay_without_coming_back(payer)
    sandbox.deliver(gateway="rbs", copies=2)
    assert wait_for(lambda: deliveries_answered(sandbox, 4))
    payer.get(back)
    _, attempts = latest_order(shop)
    paid = attempts[-1]
    assert paid.state == AttemptState.PAID

    refund(shop, paid.id, 500)
    refund(shop, paid.id, 1500)
    sandbox.deliver(gateway="rbs", copies=2)  # the refunds' callbacks, if the gateway sent any
    time.sleep(0.5)

    keys = {"order_received", "payment_failed:1", "order_confirmation", "refunded:1", "refunded:2"}
    assert wait_for(lambda: all_sent(shop, order.id, keys))
    assert {key: len(mails(shop, order.number, key)) for key in keys} == dict.fromkeys(keys, 1)
    [part] = mails(shop, order.number, "refunded:1")
    assert part["Subject"] == f"Storefront: order {order.number} refunded"
    assert "we have refunded €5.00" in text_of(part)
    assert "€15.00 of it remains paid" in text_of(part)
    [whole] = mails(shop, order.number, "refunded:2")
    assert "we have refunded €20.00" in text_of(whole) and "the whole payment" in text_of(whole)
    with shop.db() as session:
        assert session.get(Order, order.id).state == OrderState.REFUNDED


@scenario(
    "An unpaid order past its window, the reconciler run twice → expired once, one mail",
    gateway="rbs",
)
def test_an_expired_order_mails_the_customer_once(shop, sandbox):
    product_id, slug = product(shop, stock=5)
    order, _ = declined(shop, slug)
    with shop.db() as session:
        session.execute(
            update(Order)
            .where(Order.id == order.id)
            .values(payment_due_by=now_utc() - timedelta(seconds=1))
        )
        session.commit()
    with shop.app.app_context():
        assert reconcile(older_than=0)["expired_orders"] == 1
        assert reconcile(older_than=0)["expired_orders"] == 0
        db.session.remove()
    keys = {"order_received", "payment_failed:1", "order_expired"}
    assert wait_for(lambda: all_sent(shop, order.id, keys))
    [mail] = mails(shop, order.number, "order_expired")
    assert mail["Subject"] == f"Storefront: order {order.number} expired"
    assert "nothing was charged" in text_of(mail)
    # Its "pay now" link now says the order can no longer be paid, and starts nothing.
    [failed] = mails(shop, order.number, "payment_failed:1")
    page = Browser().get(pay_link(failed))
    assert f"Order {order.number} can no longer be paid" in page and "Pay now" not in page


@scenario("A held payment voided by the operator → cancelled once, one mail", gateway="rbs")
def test_a_voided_order_mails_the_customer_once(make_shop, sandbox, database):
    shop = make_shop(RBS_TWO_PHASE=True, **({"DATABASE_URL": database} if database else {}))
    _, slug = product(shop, stock=5)
    browser = Browser()
    to_gateway(shop, browser, slug)
    pay_rbs(browser)
    order, [attempt] = latest_order(shop)
    assert attempt.state == AttemptState.AUTHORIZED
    with shop.app.app_context():
        backoffice.void(db.session.get_one(PaymentAttempt, attempt.id), "operator@example.com")
        db.session.remove()
    keys = {"order_received", "order_confirmation", "order_cancelled"}
    assert wait_for(lambda: all_sent(shop, order.id, keys))
    [mail] = mails(shop, order.number, "order_cancelled")
    assert mail["Subject"] == f"Storefront: order {order.number} cancelled"
    assert "nothing is charged" in text_of(mail)
