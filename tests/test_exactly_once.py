"""Exactly-once under concurrency, faults and hostile input, on a deployment as production runs
it: two gunicorn server processes against one database (SQLite, and PostgreSQL), the sandbox
gateway over HTTP, and an SMTP server that counts the confirmation mails.
"""

from __future__ import annotations

import contextlib
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from urllib.parse import urljoin

import pytest
import requests
from sqlalchemy import func, select

from storefront import create_app
from storefront.catalogue.models import Product
from storefront.extensions import db
from storefront.orders.mail import SUBJECTS
from storefront.orders.models import Order, OrderEvent, OrderState, OutboxMessage
from storefront.payments.models import AttemptState, PaymentAttempt, PaymentEvent
from tests.browser import Browser
from tests.deployment import (
    CALLBACK_KEY,
    ROOT,
    SECRET,
    Deployment,
    SmtpServer,
    database_url,
    drop_database,
    latest_attempt,
    new_product,
    order_of,
)
from tests.journeys import (
    CUSTOMER,
    pay_altapay,
    pay_interpay,
    pay_rbs,
    pay_without_coming_back,
    to_gateway,
    wait_for,
)
from tests.oracles import altapay_checksum, rbs_checksum

scenario = pytest.mark.scenario

GATEWAYS = ["rbs", "altapay", "interpay"]
# Where the sandbox keeps what a shop registered, and the call that registers it.
REGISTRATIONS = {"rbs": "rbs_order", "altapay": "altapay_request", "interpay": "interpay_session"}
START_OPERATIONS = {
    "rbs": "register",
    "altapay": "createPaymentRequest",
    "interpay": "StartSession",
}
PAY = {"rbs": pay_rbs, "altapay": pay_altapay, "interpay": pay_interpay}
CLAIM_TIMEOUT = 5  # seconds


@pytest.fixture(scope="module")
def smtp():
    server = SmtpServer()
    with server.running():
        yield server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def deployment(request, sandbox_server, smtp, tmp_path_factory):
    """Two gunicorn processes, one database, one mail server; and the shop's app in this process
    to look into that database."""
    folder = tmp_path_factory.mktemp(request.param)
    url, admin = database_url(request.param, folder)
    # A claim on a mail is taken over after MAIL_CLAIM_TIMEOUT seconds (a process killed
    # mid-send): short, for the kill test, but longer than a first mail's composing takes on a
    # busy machine, or a slow first send would be taken over and sent twice.
    settings = {"MAIL_URL": smtp.url, "MAIL_CLAIM_TIMEOUT": CLAIM_TIMEOUT}
    app = create_app(
        {
            "SECRET_KEY": SECRET,
            "DATABASE_URL": url,
            "SANDBOX": False,
            "INSTANCE_PATH": str(folder),
            "RBS_URL": f"{sandbox_server.url}/rbs/payment/rest/",
            "ALTAPAY_URL": f"{sandbox_server.url}/altapay/merchant/API/",
            "INTERPAY_URL": (
                f"{sandbox_server.url}/interpay/svra/ {sandbox_server.url}/interpay/svrb/"
            ),
            "RATELIMIT_ENABLED": False,
            **settings,
        }
    )
    with app.app_context():
        db.create_all()
    running = Deployment(url, sandbox_server.url, folder, **settings).start()
    yield SimpleNamespace(
        app=app, urls=running.urls, url=running.urls[0], processes=running, kind=request.param
    )
    running.stop()
    with app.app_context():
        db.engine.dispose()
    if admin:
        drop_database(admin, url)


def query(deployment, statement):
    with deployment.app.app_context():
        result = db.session.execute(statement)
        rows = result.scalars().all()
        db.session.remove()
        return rows


def signed_callback(
    attempt: PaymentAttempt, operation: str = "deposited", status: str = "1", **extra
) -> dict:
    params = {
        "mdOrder": attempt.gateway_id,
        "orderNumber": attempt.reference,
        "operation": operation,
        "status": status,
        **extra,
    }
    params["checksum"] = rbs_checksum(params, CALLBACK_KEY)
    return params


def fresh(browser: Browser, method: str, url: str, **kwargs):
    """A request on a new connection with the browser's cookies: a kept-alive connection may
    have been closed by the server while the other buyers were getting ready."""
    return requests.request(method, url, cookies=browser.http.cookies, timeout=60, **kwargs)


def at_once(calls):
    """Run the calls together: every thread waits at a barrier, then all go."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def subject_of(order_number: str, kind: str) -> str:
    """The English subject of the order's mail of ``kind``: "Storefront: order 1234 confirmed"."""
    return str(SUBJECTS[kind]) % {"shop": "Storefront", "number": order_number}


def mails_for(smtp, order_number: str, kind: str = "order_confirmation") -> int:
    """How many mails of ``kind`` the mail server took for the order, told by their subject."""
    subject = re.compile(
        rf"^Subject: {re.escape(subject_of(order_number, kind))}\r?$".encode(), re.M
    )
    return sum(subject.search(message) is not None for message in smtp.messages)


def kinds_sent(deployment, order_id: int) -> list[str]:
    """The order's outbox keys, sent ones only, sorted."""
    rows = query(deployment, select(OutboxMessage).where(OutboxMessage.order_id == order_id))
    return sorted(row.kind for row in rows if row.sent_at is not None)


def paid_transitions(deployment, order_id: int) -> int:
    return len(
        query(
            deployment,
            select(OrderEvent.id).where(
                OrderEvent.order_id == order_id, OrderEvent.to_state == OrderState.PAID
            ),
        )
    )


@scenario(
    "One valid callback ×50 at once across both processes → one transition, one stock "
    "decrement, one email; every call answered 2xx"
)
def test_fifty_concurrent_callbacks_fulfil_once(deployment, sandbox, smtp):
    product_id, slug = new_product(deployment, stock=10)
    sandbox.settings(**{"delivery:rbs": "hold"})  # only our 50 callbacks arrive
    browser = Browser()
    to_gateway(deployment, browser, slug)
    pay_without_coming_back(browser)
    attempt = latest_attempt(deployment)
    params = signed_callback(attempt, amount=str(attempt.amount))
    urls = deployment.urls

    codes = at_once(
        [
            (
                lambda i=i: (
                    requests.post(
                        f"{urls[i % 2]}/pay/rbs/callback/notification", data=params, timeout=60
                    ).status_code
                )
            )
            for i in range(50)
        ]
    )

    assert codes == [200] * 50
    order = order_of(deployment, attempt.id)
    assert order.state == OrderState.PAID
    assert paid_transitions(deployment, order.id) == 1
    assert query(deployment, select(Product.stock).where(Product.id == product_id)) == [9]
    assert wait_for(lambda: mails_for(smtp, order.number) == 1, seconds=60)
    assert mails_for(smtp, order.number, "order_received") == 1
    outbox = query(deployment, select(OutboxMessage).where(OutboxMessage.order_id == order.id))
    assert sorted(m.kind for m in outbox) == ["order_confirmation", "order_received"]
    assert all(m.sent_at is not None for m in outbox)


@scenario("Browser return and callback released together, 100 times → one fulfilment each time")
def test_return_and_callback_together_fulfil_once_each_time(deployment, sandbox, smtp):
    _, slug = new_product(deployment, stock=1000)
    sandbox.settings(**{"delivery:rbs": "hold"})
    urls = deployment.urls
    orders = []
    for _ in range(100):
        browser = Browser()
        to_gateway(deployment, browser, slug)
        return_url = pay_without_coming_back(browser)
        attempt = latest_attempt(deployment)
        params = signed_callback(attempt)
        # The browser comes back to one process while the gateway calls the other.
        at_once(
            [
                lambda u=return_url, b=browser: fresh(b, "GET", u, allow_redirects=False),
                lambda p=params: requests.post(
                    f"{urls[1]}/pay/rbs/callback/notification", data=p, timeout=60
                ),
            ]
        )
        orders.append(order_of(deployment, attempt.id))
    for order in orders:
        assert paid_transitions(deployment, order.id) == 1
    assert wait_for(lambda: all(mails_for(smtp, o.number) == 1 for o in orders), seconds=60)


@scenario("20 concurrent 'place order' posts for one cart → one order, one gateway registration")
@pytest.mark.parametrize("gateway", GATEWAYS)
def test_twenty_concurrent_place_order_posts_make_one_order(deployment, sandbox, gateway):
    _, slug = new_product(deployment, stock=50)
    browser = Browser()
    page = browser.get(f"{deployment.url}/p/{slug}")
    browser.submit(page.form("/cart/add"), quantity=2)
    page = browser.get(f"{deployment.url}/checkout/")
    page = browser.submit(page.form("/checkout/"), gateway=gateway, **CUSTOMER)
    place = page.form("/checkout/place")
    before = len(query(deployment, select(Order.id)))
    urls = deployment.urls

    responses = at_once(
        [
            (
                lambda i=i: browser.http.post(
                    f"{urls[i % 2]}/checkout/place",
                    data=place.fields,
                    timeout=60,
                    allow_redirects=False,
                )
            )
            for i in range(20)
        ]
    )

    assert all(r.status_code in (202, 303) for r in responses), [r.status_code for r in responses]
    assert len(query(deployment, select(Order.id))) == before + 1
    assert len(sandbox.state()[REGISTRATIONS[gateway]]) == 1
    gateway_pages = {
        r.headers["Location"]
        for r in responses
        if r.status_code == 303 and r.headers["Location"].startswith(sandbox.url)
    }
    assert len(gateway_pages) <= 1  # everyone who was sent on went to the same payment


@scenario(
    "Stock of 1 and 30 buyers at once → one order holds it; stock never below zero; "
    "the others are told it is sold out"
)
def test_thirty_buyers_for_the_last_item(deployment, sandbox):
    product_id, slug = new_product(deployment, stock=1)
    buyers = []
    for _ in range(30):
        browser = Browser()
        page = browser.get(f"{deployment.url}/p/{slug}")
        browser.submit(page.form("/cart/add"), quantity=1)
        page = browser.get(f"{deployment.url}/checkout/")
        page = browser.submit(page.form("/checkout/"), gateway="rbs", **CUSTOMER)
        buyers.append((browser, page.form("/checkout/place")))
    urls = deployment.urls

    responses = at_once(
        [
            (
                # Each on a new connection: a kept-alive one may have been closed by the
                # server while the other buyers were getting ready.
                lambda i=i, b=b, f=f: fresh(
                    b, "POST", f"{urls[i % 2]}/checkout/place", data=f.fields
                )
            )
            for i, (b, f) in enumerate(buyers)
        ]
    )

    on_gateway = [r for r in responses if r.url.startswith(sandbox.url)]
    sold_out = [r for r in responses if "not enough stock" in r.text or "is sold out" in r.text]
    assert len(on_gateway) == 1
    assert len(sold_out) == 29, [
        (r.status_code, r.url, r.text[:3000])
        for r in responses
        if r not in on_gateway and r not in sold_out
    ][:1]
    assert query(deployment, select(Product.stock).where(Product.id == product_id)) == [0]


@scenario(
    "The gateway hangs at registration → a clear page within the timeout, the order "
    "stays payable, no worker timeout"
)
@pytest.mark.parametrize("gateway", GATEWAYS)
def test_hanging_gateway_gives_a_clear_page_and_a_payable_order(deployment, sandbox, gateway):
    _, slug = new_product(deployment)
    # Longer than the shop's 3 s read timeout; InterPay's second server hangs as well.
    sandbox.arm(gateway, START_OPERATIONS[gateway], "hang", count=2, seconds=8)
    browser = Browser()
    page = to_gateway(deployment, browser, slug, gateway=gateway)
    assert page.status == 200
    assert "Your payment was not completed" in page
    assert "could not reach the payment service" in page.text
    order = order_of(deployment, latest_attempt(deployment).id)
    assert order.state == OrderState.PENDING_PAYMENT
    assert latest_attempt(deployment).state == AttemptState.UNKNOWN
    # The customer tries again once the gateway answers, and pays.
    sandbox.disarm()
    browser.submit(page.form("/pay", button="Try again"), gateway=gateway)
    page = PAY[gateway](browser)
    assert "Thank you, your" in page
    assert order_of(deployment, latest_attempt(deployment).id).state in (
        OrderState.PAID,
        OrderState.AUTHORIZED,
    )


@scenario("A status query fails twice, then answers → the right state")
def test_status_query_failing_twice_then_answering(deployment, sandbox):
    _, slug = new_product(deployment)
    sandbox.settings(**{"delivery:rbs": "hold"})
    browser = Browser()
    to_gateway(deployment, browser, slug)
    return_url = pay_without_coming_back(browser)
    sandbox.arm("rbs", "getOrderStatusExtended", "http_503", count=2)

    # The query and its one retry both fail: unknown, never failed.
    response = browser.http.get(return_url, timeout=30, allow_redirects=False)
    assert response.status_code == 303
    assert latest_attempt(deployment).state == AttemptState.REDIRECTED
    attempt = latest_attempt(deployment)
    errors = query(
        deployment,
        select(PaymentEvent.summary).where(
            PaymentEvent.attempt_id == attempt.id, PaymentEvent.summary.like("%unknown%")
        ),
    )
    assert errors  # the failed queries are in the evidence
    page = browser.get(urljoin(return_url, response.headers["Location"]))  # asks again: answers
    assert "Thank you, your payment was received" in page
    assert latest_attempt(deployment).state == AttemptState.PAID


@scenario("A forged return claiming success while the gateway says unpaid → not paid, logged")
def test_forged_return_is_only_a_trigger(deployment, sandbox):
    _, slug = new_product(deployment)
    browser = Browser()
    to_gateway(deployment, browser, slug)
    attempt = latest_attempt(deployment)
    page = browser.get(
        f"{deployment.urls[1]}/pay/rbs/return/{attempt.token}"
        f"?orderId={attempt.gateway_id}&orderStatus=2&paid=true"
    )
    assert "Thank you" not in page
    assert latest_attempt(deployment).state == AttemptState.PENDING
    assert order_of(deployment, attempt.id).state == OrderState.PENDING_PAYMENT


@scenario("Callbacks with a bad, a missing, or a tampered checksum → no state change, logged")
def test_badly_signed_callbacks_change_nothing(deployment, sandbox):
    _, slug = new_product(deployment)
    sandbox.settings(**{"delivery:rbs": "hold"})
    browser = Browser()
    to_gateway(deployment, browser, slug)
    pay_without_coming_back(browser, card="4000000000000002")  # declined at the gateway
    attempt = latest_attempt(deployment)
    good = signed_callback(attempt)
    bad = {**good, "checksum": "A" * 64}
    missing = {k: v for k, v in good.items() if k != "checksum"}
    tampered = {**good, "amount": "1"}  # a field added after signing
    for form in (bad, missing, tampered):
        response = requests.post(
            f"{deployment.url}/pay/rbs/callback/notification", data=form, timeout=30
        )
        assert response.status_code == 400
    assert latest_attempt(deployment).state == AttemptState.REDIRECTED
    refused = query(
        deployment,
        select(PaymentEvent.summary).where(
            PaymentEvent.attempt_id == attempt.id, PaymentEvent.summary.like("%refused%")
        ),
    )
    assert len(refused) == 3


@scenario(
    "A validly signed callback claiming success for a declined payment → the status "
    "query decides: declined"
)
def test_signed_callback_does_not_overrule_the_gateways_status(deployment, sandbox):
    _, slug = new_product(deployment)
    sandbox.settings(**{"delivery:rbs": "hold"})
    browser = Browser()
    to_gateway(deployment, browser, slug)
    pay_without_coming_back(browser, card="4000000000000002")
    attempt = latest_attempt(deployment)
    response = requests.post(
        f"{deployment.url}/pay/rbs/callback/notification",
        data=signed_callback(attempt, status="1"),
        timeout=30,
    )
    assert response.status_code == 200
    assert latest_attempt(deployment).state == AttemptState.DECLINED
    assert order_of(deployment, attempt.id).state == OrderState.PENDING_PAYMENT


@scenario(
    "The gateway reports another amount for the payment → on hold for the operator, never paid"
)
def test_amount_mismatch_puts_the_order_on_hold(deployment, sandbox):
    _, slug = new_product(deployment, price=1250)
    sandbox.settings(**{"delivery:rbs": "hold"})
    browser = Browser()
    to_gateway(deployment, browser, slug)
    return_url = pay_without_coming_back(browser)
    sandbox.arm("rbs", "getOrderStatusExtended", "tamper_amount", amount=1)
    page = browser.get(return_url)
    assert "We are checking your payment" in page
    attempt = latest_attempt(deployment)
    assert attempt.state == AttemptState.MISMATCH
    assert order_of(deployment, attempt.id).state == OrderState.ON_HOLD


@scenario("A callback naming one order's number and another's payment id → refused")
def test_callback_mixing_two_payments_names_neither(deployment, sandbox):
    _, slug = new_product(deployment)
    sandbox.settings(**{"delivery:rbs": "hold"})
    first, second = Browser(), Browser()
    to_gateway(deployment, first, slug)
    a = latest_attempt(deployment)
    to_gateway(deployment, second, slug)
    pay_without_coming_back(second)
    b = latest_attempt(deployment)
    mixed = SimpleNamespace(gateway_id=b.gateway_id, reference=a.reference)
    response = requests.post(
        f"{deployment.url}/pay/rbs/callback/notification", data=signed_callback(mixed), timeout=30
    )
    assert response.status_code == 404
    assert order_of(deployment, a.id).state == OrderState.PENDING_PAYMENT


@scenario("A fail callback after success → the order stays paid")
def test_fail_after_success_leaves_paid(deployment, sandbox):
    _, slug = new_product(deployment)
    browser = Browser()
    to_gateway(deployment, browser, slug)
    page = browser.submit(
        browser.page.form(button="Cancel"),
        button="pay",
        pan="4111111111111111",
        expiry="12/34",
        cvc="123",
    )
    assert "Thank you" in page
    attempt = latest_attempt(deployment)
    response = requests.post(
        f"{deployment.url}/pay/rbs/callback/notification",
        data=signed_callback(attempt, status="0"),
        timeout=30,
    )
    assert response.status_code == 200
    assert latest_attempt(deployment).state == AttemptState.PAID
    assert order_of(deployment, attempt.id).state == OrderState.PAID


@scenario("A replay of the payment's callback after a refund → stays refunded")
def test_replay_after_refund_stays_refunded(deployment, sandbox):
    _, slug = new_product(deployment, price=2000)
    browser = Browser()
    to_gateway(deployment, browser, slug)
    browser.submit(
        browser.page.form(button="Cancel"),
        button="pay",
        pan="4111111111111111",
        expiry="12/34",
        cvc="123",
    )
    attempt = latest_attempt(deployment)
    with deployment.app.app_context():
        from storefront.payments import backoffice

        backoffice.refund(db.session.get(PaymentAttempt, attempt.id), 2000, "test operator")
        db.session.remove()
    assert latest_attempt(deployment).state == AttemptState.REFUNDED
    response = requests.post(
        f"{deployment.urls[1]}/pay/rbs/callback/notification",
        data=signed_callback(attempt),
        timeout=30,
    )
    assert response.status_code == 200
    assert latest_attempt(deployment).state == AttemptState.REFUNDED
    assert order_of(deployment, attempt.id).state == OrderState.REFUNDED


def mail_text(smtp, order_number: str, kind: str) -> str:
    """The plain-text part of the one mail of ``kind`` the mail server took for the order."""
    from email import message_from_bytes, policy

    subject = f"Subject: {subject_of(order_number, kind)}"
    [raw] = [m for m in smtp.messages if subject.encode() in m]
    message = message_from_bytes(raw, policy=policy.default)
    return message.get_body(("plain",)).get_content()


@scenario(
    "A declined payment's callback ×20 at once across both processes, then paid from the "
    "mail's 'pay now' link with its callback ×20 → one payment-failed mail, one confirmation"
)
def test_concurrent_callbacks_of_a_declined_then_paid_order_mail_each_kind_once(
    deployment, sandbox, smtp
):
    _, slug = new_product(deployment, stock=10)
    sandbox.settings(**{"delivery:rbs": "hold"})  # only our callbacks arrive
    urls = deployment.urls

    def twenty(params):
        return at_once(
            [
                (
                    lambda i=i: (
                        requests.post(
                            f"{urls[i % 2]}/pay/rbs/callback/notification", data=params, timeout=60
                        ).status_code
                    )
                )
                for i in range(20)
            ]
        )

    browser = Browser()
    to_gateway(deployment, browser, slug)
    pay_without_coming_back(browser, card="4000000000000002")  # declined
    declined = latest_attempt(deployment)
    assert twenty(signed_callback(declined, status="0")) == [200] * 20
    order = order_of(deployment, declined.id)
    assert wait_for(lambda: mails_for(smtp, order.number, "payment_failed") == 1, seconds=60)
    link = re.search(r"Pay now: (\S+)", mail_text(smtp, order.number, "payment_failed"))
    assert link

    payer = Browser()  # the mail read in another browser
    page = payer.get(link.group(1))
    payer.submit(page.form(button="Pay now"), gateway="rbs")
    pay_without_coming_back(payer)
    paid = latest_attempt(deployment)
    assert paid.order_id == order.id and paid.id != declined.id
    assert twenty(signed_callback(paid, amount=str(paid.amount))) == [200] * 20

    assert order_of(deployment, paid.id).state == OrderState.PAID
    assert paid_transitions(deployment, order.id) == 1
    assert wait_for(lambda: mails_for(smtp, order.number) == 1, seconds=60)
    expected = ["order_confirmation", "order_received", "payment_failed:1"]
    assert wait_for(lambda: kinds_sent(deployment, order.id) == expected, seconds=60)
    for kind in ("order_received", "payment_failed"):
        assert mails_for(smtp, order.number, kind) == 1


@scenario(
    "The server is SIGKILLed after committing a paid transition, before its email → "
    "after a restart, exactly one email"
)
def test_killed_before_the_email_still_sends_exactly_one(deployment, sandbox, smtp):
    _, slug = new_product(deployment)
    sandbox.settings(**{"delivery:rbs": "hold"})
    browser = Browser()
    to_gateway(deployment, browser, slug)
    return_url = pay_without_coming_back(browser)
    attempt = latest_attempt(deployment)
    number = order_of(deployment, attempt.id).number
    # The order-received mail of placing it is out before the mail server freezes.
    assert wait_for(lambda: mails_for(smtp, number, "order_received") == 1, seconds=60)
    smtp.frozen.set()  # the mail server will take the connection and never answer DATA
    smtp.arrived.clear()

    def come_back():
        # The server dies under this request: that is the point.
        with contextlib.suppress(requests.ConnectionError):
            requests.get(return_url, timeout=60, allow_redirects=False)

    waiter = threading.Thread(target=come_back, daemon=True)
    waiter.start()
    assert smtp.arrived.wait(timeout=30)  # paid is committed; the worker is inside the send
    order = order_of(deployment, attempt.id)
    assert order.state == OrderState.PAID
    deployment.processes.processes[0].kill()
    smtp.frozen.clear()
    deployment.processes.restart(0)
    assert mails_for(smtp, order.number) == 0

    def reconcile():
        with deployment.app.app_context():
            from storefront.payments.reconciler import reconcile as run

            run(older_than=0)
            db.session.remove()

    import time

    time.sleep(CLAIM_TIMEOUT + 0.1)  # the dead worker's claim on the mail goes stale
    at_once([reconcile, reconcile, reconcile])
    assert mails_for(smtp, order.number) == 1
    assert paid_transitions(deployment, order.id) == 1


def test_stock_can_never_go_below_zero_in_the_database(deployment):
    """The CHECK constraint is the last line: even a direct update cannot oversell."""
    from sqlalchemy import exc, update

    product_id, _ = new_product(deployment, stock=1)
    with deployment.app.app_context():
        with pytest.raises(exc.IntegrityError):
            db.session.execute(
                update(Product).where(Product.id == product_id).values(stock=Product.stock - 2)
            )
            db.session.commit()
        db.session.rollback()
        assert (
            db.session.execute(
                select(func.min(Product.stock)).where(Product.id == product_id)
            ).scalar()
            == 1
        )
        db.session.remove()


# AltaPay and InterPay ------------------------------------------------------------------------


def transitions_to(deployment, order_id: int, state: str) -> int:
    return len(
        query(
            deployment,
            select(OrderEvent.id).where(
                OrderEvent.order_id == order_id, OrderEvent.to_state == state
            ),
        )
    )


def requests_of(deployment, attempt_id: int, marker: str) -> int:
    """How many requests the shop sent for the attempt whose logged body contains ``marker``."""
    details = query(
        deployment,
        select(PaymentEvent.detail).where(
            PaymentEvent.attempt_id == attempt_id, PaymentEvent.kind == "request"
        ),
    )
    return sum(marker in (detail or "") for detail in details)


ALTAPAY_SECRET = "sandbox-shared-secret"  # the sandbox's demo secret, as the shop is configured


def unprocessed_altapay_callback(deployment, sandbox, slug: str) -> tuple[PaymentAttempt, dict]:
    """Pay on AltaPay's page while the gateway signs its callback with a wrong key (the shop
    refuses it), then return that callback as it should have been: validly signed, and not yet
    seen by the shop."""
    sandbox.arm("altapay", "callback", "bad_checksum")
    browser = Browser()
    to_gateway(deployment, browser, slug, gateway="altapay")
    pay_altapay(browser)
    attempt = latest_attempt(deployment)
    # The wrongly signed callback changed nothing.
    assert order_of(deployment, attempt.id).state == OrderState.PENDING_PAYMENT
    [posted] = sandbox.state()["altapay_callback"]
    fields = dict(posted["fields"])
    fields["checksum"] = altapay_checksum(fields, ALTAPAY_SECRET)
    return attempt, fields


@scenario(
    "One valid callback ×50 at once across both processes → one transition, one stock "
    "decrement, one email; every call answered 2xx",
    gateway="altapay",
)
def test_fifty_concurrent_altapay_callbacks_fulfil_once(deployment, sandbox, smtp):
    product_id, slug = new_product(deployment, stock=10, price=1250)
    attempt, fields = unprocessed_altapay_callback(deployment, sandbox, slug)
    urls = deployment.urls

    answers = at_once(
        [
            (
                lambda i=i: requests.post(
                    f"{urls[i % 2]}/pay/altapay/callback/ok", data=fields, timeout=60
                )
            )
            for i in range(50)
        ]
    )

    assert [a.status_code for a in answers] == [200] * 50
    assert all("Thank you, your order is confirmed" in a.text for a in answers)
    order = order_of(deployment, attempt.id)
    assert order.state == OrderState.AUTHORIZED
    assert transitions_to(deployment, order.id, OrderState.AUTHORIZED) == 1
    assert query(deployment, select(Product.stock).where(Product.id == product_id)) == [9]
    assert wait_for(lambda: mails_for(smtp, order.number) == 1, seconds=60)
    outbox = query(deployment, select(OutboxMessage).where(OutboxMessage.order_id == order.id))
    assert sorted(m.kind for m in outbox) == ["order_confirmation", "order_received"]


@scenario(
    "AltaPay: callback_ok and callback_notification for one payment released together, "
    "20 times → one fulfilment each time",
    gateway="altapay",
)
def test_altapay_ok_and_notification_together_fulfil_once(deployment, sandbox, smtp):
    _, slug = new_product(deployment, stock=100, price=1250)
    urls = deployment.urls
    orders = []
    for _ in range(20):
        sandbox.reset()
        attempt, fields = unprocessed_altapay_callback(deployment, sandbox, slug)
        at_once(
            [
                lambda f=fields: requests.post(
                    f"{urls[0]}/pay/altapay/callback/ok", data=f, timeout=60
                ),
                lambda f=fields: requests.post(
                    f"{urls[1]}/pay/altapay/callback/notification", data=f, timeout=60
                ),
            ]
        )
        orders.append(order_of(deployment, attempt.id))
    for order in orders:
        assert order.state == OrderState.AUTHORIZED
        assert transitions_to(deployment, order.id, OrderState.AUTHORIZED) == 1
    assert wait_for(lambda: all(mails_for(smtp, o.number) == 1 for o in orders), seconds=60)


def interpay_paid_without_coming_back(deployment, slug: str) -> tuple[PaymentAttempt, str]:
    """Pay on InterPay's page; the return URL the browser was sent to, not yet followed."""

    browser = Browser()
    to_gateway(deployment, browser, slug, gateway="interpay")
    response = pay_interpay(browser, follow=False)
    assert response.status_code == 303
    return latest_attempt(deployment), response.headers["Location"]


@scenario(
    "InterPay: 20 browser returns at once across both processes → one Ack, one capture, one email",
    gateway="interpay",
)
def test_interpay_returns_across_processes_send_one_ack(deployment, sandbox, smtp):
    product_id, slug = new_product(deployment, stock=10, price=2500)
    attempt, back = interpay_paid_without_coming_back(deployment, slug)
    path = back.split("/", 3)[3]
    urls = deployment.urls

    codes = at_once(
        [
            (lambda i=i: requests.get(f"{urls[i % 2]}/{path}", timeout=60).status_code)
            for i in range(20)
        ]
    )

    assert codes == [200] * 20
    order = order_of(deployment, attempt.id)
    assert order.state == OrderState.PAID
    assert paid_transitions(deployment, order.id) == 1
    assert requests_of(deployment, attempt.id, '"ACTION": "Ack"') == 1
    [session] = sandbox.state()["interpay_session"]
    assert (session["state"], session["acked"]) == ("captured", "Y")  # the gateway agrees
    assert query(deployment, select(Product.stock).where(Product.id == product_id)) == [9]
    assert wait_for(lambda: mails_for(smtp, order.number) == 1, seconds=60)


@scenario(
    "InterPay: the customer pays and closes the tab; three reconciler processes run at "
    "once → one Ack, paid once",
    gateway="interpay",
)
def test_interpay_reconcilers_at_once_send_one_ack(deployment, sandbox, smtp):
    import subprocess
    import sys
    from datetime import timedelta

    from sqlalchemy import update

    _, slug = new_product(deployment, stock=10, price=2500)
    attempt, _ = interpay_paid_without_coming_back(deployment, slug)
    with deployment.app.app_context():  # the browser left long enough ago to look it up
        db.session.execute(
            update(PaymentAttempt)
            .where(PaymentAttempt.id == attempt.id)
            .values(created_at=attempt.created_at - timedelta(seconds=160))
        )
        db.session.commit()
        db.session.remove()
    command = [sys.executable, "-m", "flask", "--app", "app", "payments", "reconcile"]
    env = deployment.processes.env()

    results = at_once(
        [
            lambda: subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
                command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
            )
            for _ in range(3)
        ]
    )

    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr[-2000:] for r in results]
    order = order_of(deployment, attempt.id)
    assert order.state == OrderState.PAID
    assert paid_transitions(deployment, order.id) == 1
    assert requests_of(deployment, attempt.id, '"ACTION": "Ack"') == 1
    [session] = sandbox.state()["interpay_session"]
    assert (session["state"], session["acked"]) == ("captured", "Y")
    assert wait_for(lambda: mails_for(smtp, order.number) == 1, seconds=60)


@scenario(
    "A replay of the payment's callback after a refund → stays refunded",
    gateway="altapay",
)
def test_altapay_replay_after_refund_stays_refunded(deployment, sandbox):
    from storefront.payments import backoffice

    _, slug = new_product(deployment, price=1250)
    attempt, fields = unprocessed_altapay_callback(deployment, sandbox, slug)
    first = requests.post(f"{deployment.url}/pay/altapay/callback/ok", data=fields, timeout=30)
    assert first.status_code == 200 and "Thank you" in first.text
    with deployment.app.app_context():
        backoffice.capture(db.session.get(PaymentAttempt, attempt.id), 1250, "test operator")
        backoffice.refund(db.session.get(PaymentAttempt, attempt.id), 1250, "test operator")
        db.session.remove()
    assert latest_attempt(deployment).state == AttemptState.REFUNDED

    replay = requests.post(f"{deployment.urls[1]}/pay/altapay/callback/ok", data=fields, timeout=30)

    assert replay.status_code == 200
    assert latest_attempt(deployment).state == AttemptState.REFUNDED
    assert order_of(deployment, attempt.id).state == OrderState.REFUNDED


@scenario(
    "A forged return claiming success while the gateway says unpaid → not paid, logged",
    gateway="interpay",
)
def test_forged_interpay_return_is_only_a_trigger(deployment, sandbox):
    _, slug = new_product(deployment)
    browser = Browser()
    to_gateway(deployment, browser, slug, gateway="interpay")  # on the payment page; not paid
    attempt = latest_attempt(deployment)

    page = browser.get(
        f"{deployment.urls[1]}/pay/interpay/return/{attempt.token}"
        f"?SecureID={attempt.gateway_id}&Status=0000&CODE=0000&TEXT=CAPTURED"
    )

    assert page.status == 200
    assert "Thank you" not in page
    assert order_of(deployment, attempt.id).state == OrderState.PENDING_PAYMENT
    assert latest_attempt(deployment).state not in (AttemptState.PAID, AttemptState.AUTHORIZED)
    assert requests_of(deployment, attempt.id, '"ACTION": "Ack"') == 0
    [session] = sandbox.state()["interpay_session"]
    assert session["acked"] != "Y"
    decisions = query(
        deployment,
        select(PaymentEvent.summary).where(
            PaymentEvent.attempt_id == attempt.id, PaymentEvent.kind == "decision"
        ),
    )
    # The return is in the payment's evidence, with what the gateway said to it.
    assert any(d.startswith("browser return: gateway says") for d in decisions), decisions
