"""The operator's side: staff accounts, sign-in, the orders list, the order page, the payment
actions and the reconciliation view.

Most tests run on the ``app``/``client`` fixtures with a stand-in gateway adapter; the last ones
drive a live shop against the live sandbox over HTTP, as an operator would.
"""

from __future__ import annotations

import itertools
import re
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import event, select

from storefront.admin.models import StaffUser
from storefront.extensions import db
from storefront.gateways.base import Gateway, GatewayError, GatewayRefused, Outcome, Result
from storefront.orders.models import Order, OrderEvent, OrderLine, OrderState
from storefront.payments.models import AttemptState, PaymentAttempt, PaymentEvent
from tests.admin_steps import (
    EMAIL,
    PASSWORD,
    Back,
    altapay_transaction,
    at_the_sandbox,
    held_on_altapay,
    held_on_the_sandbox,
    make_staff,
    shop_attempt,
)
from tests.browser import Browser, Form, Page
from tests.journeys import latest_order, pay_rbs, product, to_gateway, wait_for

# Helpers ---------------------------------------------------------------------------------------
_numbers = itertools.count(10_000_001)


def make_order(
    *,
    email: str = "ann@example.com",
    state: str = OrderState.PENDING_PAYMENT,
    total: int = 2500,
    created_at: datetime | None = None,
    number: str | None = None,
) -> Order:
    """An order of one line, placed ``created_at``; call inside an app context."""
    number = number or str(next(_numbers))
    order = Order(
        number=number,
        receipt_token=f"token-{number}-" + "x" * 20,
        email=email,
        name="Ann Example",
        address="1 Main Street",
        city="Dublin",
        postcode="D01 F5P2",
        country="IE",
        currency="EUR",
        total=total,
        state=state,
        created_at=created_at or datetime.now(UTC),
        payment_due_by=datetime.now(UTC) + timedelta(hours=1),
        lines=[OrderLine(name="Kenya Nyeri", unit_price=total, quantity=1)],
        events=[OrderEvent(to_state=OrderState.PENDING_PAYMENT, note="order placed")],
    )
    db.session.add(order)
    db.session.commit()
    return order


def add_attempt(
    order: Order,
    *,
    gateway: str = "rbs",
    state: str = AttemptState.REDIRECTED,
    authorized: int = 0,
    captured: int = 0,
    refunded: int = 0,
    events: tuple[tuple[str, str, str], ...] = (),
) -> PaymentAttempt:
    seq = len(order.attempts) + 1
    attempt = PaymentAttempt(
        order_id=order.id,
        seq=seq,
        gateway=gateway,
        reference=f"{order.number}_{seq}",
        token=f"attempt-{order.number}-{seq}-" + "y" * 20,
        gateway_id=f"gw-{order.number}-{seq}",
        state=state,
        amount=order.total,
        currency=order.currency,
        authorized=authorized,
        captured=captured,
        refunded=refunded,
        masked_card="411111**1111",
    )
    db.session.add(attempt)
    db.session.flush()
    for kind, summary, detail in events:
        db.session.add(
            PaymentEvent(attempt_id=attempt.id, kind=kind, summary=summary, detail=detail)
        )
    db.session.commit()
    db.session.refresh(order)
    return attempt


def held_order(app, total: int = 2500) -> tuple[str, int]:
    """An authorised (held) order on the stand-in gateway: (order number, attempt id)."""
    with app.app_context():
        order = make_order(state=OrderState.AUTHORIZED, total=total)
        attempt = add_attempt(order, state=AttemptState.AUTHORIZED, authorized=total)
        return order.number, attempt.id


def paid_order(app, total: int = 2500) -> tuple[str, int]:
    with app.app_context():
        order = make_order(state=OrderState.PAID, total=total)
        attempt = add_attempt(order, state=AttemptState.PAID, authorized=total, captured=total)
        return order.number, attempt.id


def attempt_row(app, attempt_id: int) -> PaymentAttempt:
    with app.app_context():
        attempt = db.session.get(PaymentAttempt, attempt_id)
        db.session.expunge(attempt)
        return attempt


class StandIn(Gateway):
    """A gateway adapter that answers from memory, like a gateway that does what it is asked.

    ``fail`` makes the next back-office call raise (a lost answer or a refusal).
    """

    name = "rbs"
    title = "Stand-in card gateway"

    def __init__(self):
        self.calls: list[tuple[str, int]] = []
        self.fail: Exception | None = None
        self.status: Result | None = None

    def _answer(self, journal, op: str, result: Result) -> Result:
        journal.record("request", f"POST /{op}", '{"userName": "demo"}')
        if self.fail is not None:
            failure, self.fail = self.fail, None
            raise failure
        journal.record("response", f"HTTP 200 from /{op}", '{"errorCode": "0"}')
        return result

    def capture(self, ref, amount, journal):
        self.calls.append(("capture", amount))
        return self._answer(
            journal,
            "deposit.do",
            Result(
                outcome=Outcome.PAID,
                amount=ref.amount,
                currency=ref.currency,
                captured=amount,
                codes="stand-in deposited",
            ),
        )

    def void(self, ref, journal):
        self.calls.append(("void", 0))
        return self._answer(
            journal, "reverse.do", Result(outcome=Outcome.VOIDED, codes="stand-in reversed")
        )

    def refund(self, ref, amount, journal):
        self.calls.append(("refund", amount))
        return self._answer(
            journal,
            "refund.do",
            Result(
                outcome=Outcome.REFUNDED,
                amount=ref.amount,
                currency=ref.currency,
                captured=ref.captured,
                refunded=ref.refunded + amount,
                codes="stand-in refunded",
            ),
        )

    def fetch_result(self, ref, journal):
        self.calls.append(("status", 0))
        journal.record("request", "POST /getOrderStatusExtended.do", "{}")
        if self.status is None:
            raise GatewayError("stand-in: no answer")
        journal.record("response", "HTTP 200 from /getOrderStatusExtended.do", '{"orderStatus": 2}')
        return self.status


@pytest.fixture
def gateway(app):
    """The stand-in adapter, installed as the shop's configured "rbs" gateway."""
    stand_in = StandIn()
    app.extensions["gateways"] = {"rbs": stand_in}
    return stand_in


@pytest.fixture
def staff(app):
    make_staff(app)


@pytest.fixture
def back(client, staff):
    """A signed-in operator."""
    office = Back(client)
    page = office.sign_in()
    assert "Signed in as Olive Operator" in page
    return office


def notices(page: Page) -> list[str]:
    return [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", text)).strip()
        for text in re.findall(r'<p class="notice[^"]*"[^>]*>(.*?)</p>', page.text, re.S)
    ]


# Sign-in required ------------------------------------------------------------------------------
def _admin_urls(app, methods: set[str]) -> list[str]:
    samples = {"number": "10000001", "attempt_id": "1", "anything": "no/such/page"}
    samples |= {"product_id": "1", "category_id": "1", "staff_id": "1", "method_id": "1"}
    urls = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            admin = rule.endpoint.startswith("admin.") and rule.endpoint != "admin.sign_in"
            if admin and rule.methods & methods:
                path = rule.rule
                for name, value in samples.items():
                    path = re.sub(rf"<(?:\w+:)?{name}>", value, path)
                urls.append(path)
    return urls


def test_every_admin_page_sends_a_signed_out_visitor_to_sign_in(app, client):
    urls = _admin_urls(app, {"GET"})
    assert "/admin/orders" in urls and "/admin/reconciliation" in urls
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302, url
        location = urlsplit(response.headers["Location"])
        assert location.path == "/admin/sign-in", url
        assert parse_qs(location.query)["next"] == [url], url


def test_every_admin_action_sends_a_signed_out_visitor_to_sign_in(app, client):
    office = Back(client)
    token = office.get("/admin/sign-in").form("/admin/sign-in").fields["csrf_token"]
    urls = _admin_urls(app, {"POST"})
    assert any(url.endswith("/capture") for url in urls)
    for url in urls:
        response = client.post(url, data={"csrf_token": token, "amount": "1.00"})
        assert response.status_code == 302, url
        assert urlsplit(response.headers["Location"]).path == "/admin/sign-in", url


def test_sign_in_returns_to_the_page_asked_for(client, staff):
    office = Back(client)
    page = office.get("/admin/orders?state=paid")
    assert "Sign in to the back office" in page
    page = office.submit(page.form("/admin/sign-in"), email=EMAIL, password=PASSWORD)
    assert urlsplit(page.url).path == "/admin/orders"
    assert urlsplit(page.url).query == "state=paid"
    assert "Signed in as Olive Operator" in page


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/admin/",
        "//evil.example/admin",
        "/\\evil.example",
        "/checkout/",
        "javascript:alert(1)",
        "/admin\r\nLocation: https://evil.example",
    ],
)
def test_sign_in_never_redirects_outside_the_back_office(client, staff, target):
    office = Back(client)
    page = office.get("/admin/sign-in", query_string={"next": target})
    form = page.form("/admin/sign-in")
    response = client.post(
        "/admin/sign-in", data={**form.fields, "next": target, "email": EMAIL, "password": PASSWORD}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/orders"


def test_email_is_matched_whatever_its_case(client, staff):
    page = Back(client).sign_in(email="  Operator@Example.COM ")
    assert "Signed in as Olive Operator" in page


def test_wrong_password_and_unknown_email_get_the_same_answer(client, staff):
    office = Back(client)
    wrong = office.sign_in(password="not the password at all")
    unknown = office.sign_in(email="nobody@example.com")
    assert wrong.status == unknown.status == 200
    assert notices(wrong) == notices(unknown) == ["The email or the password is not right."]
    assert 'role="alert"' in wrong.text
    assert PASSWORD not in wrong.text
    assert office.get("/admin/orders").url.endswith("/admin/sign-in?next=/admin/orders")


def test_sign_in_is_throttled_after_repeated_failures_even_with_the_right_password(
    app, client, staff
):
    app.config["ADMIN_SIGN_IN_LIMIT"] = 3
    office = Back(client)
    for _ in range(3):
        assert office.sign_in(password="wrong password!").status == 200
    throttled = office.sign_in()
    assert throttled.status == 429
    assert "Too many failed sign-ins" in throttled
    assert "Signed in" not in throttled
    # The same person on another address is not locked out by someone guessing elsewhere.
    elsewhere = Back(app.test_client())
    elsewhere.client.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert "Signed in as Olive Operator" in elsewhere.sign_in()


def test_guessing_across_many_emails_from_one_address_is_throttled(app, client, staff):
    app.config["ADMIN_SIGN_IN_IP_LIMIT"] = 4
    office = Back(client)
    for n in range(4):
        assert office.sign_in(email=f"guess{n}@example.com").status == 200
    assert office.sign_in().status == 429


def test_inactive_account_cannot_sign_in(app, client):
    make_staff(app, active=False)
    page = Back(client).sign_in()
    assert notices(page) == ["The email or the password is not right."]


def test_deactivating_an_account_ends_its_session(app, back, runner):
    assert back.get("/admin/orders").status == 200
    result = runner.invoke(args=["deactivate-admin", EMAIL])
    assert result.exit_code == 0, result.output
    page = back.get("/admin/orders")
    assert "Sign in to the back office" in page


def test_a_new_password_ends_sessions_opened_with_the_old_one(app, back, runner):
    new = "a brand new passphrase"
    result = runner.invoke(args=["create-admin", EMAIL, "--reset"], input=f"{new}\n{new}\n")
    assert result.exit_code == 0, result.output
    assert "Sign in to the back office" in back.get("/admin/orders")
    assert "Signed in" in back.sign_in(password=new)


def test_sign_in_starts_a_new_session(client, staff):
    with client.session_transaction() as session:
        session["cart"] = {"1": 2}
        session["planted"] = "by someone else"
    Back(client).sign_in()
    with client.session_transaction() as session:
        assert "planted" not in session and "cart" not in session
        assert session["staff"]["id"] == 1


def test_sign_out_is_a_post_with_a_csrf_token(client, back):
    assert client.get("/admin/sign-out").status_code == 405
    assert client.post("/admin/sign-out").status_code == 400  # no token: still signed in
    assert back.get("/admin/orders").status == 200
    page = back.submit(back.page.form("/admin/sign-out"), button="Sign out")
    assert "You are signed out." in page
    assert "Sign in to the back office" in back.get("/admin/orders")


def test_unknown_admin_path_is_not_found_once_signed_in(back):
    assert back.get("/admin/no/such/page").status == 404


# create-admin ----------------------------------------------------------------------------------
def test_create_admin_makes_an_account_with_a_hashed_password(app, runner):
    result = runner.invoke(
        args=["create-admin", "Boss@Example.com", "--name", "Bo Boss"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    assert "Created staff account boss@example.com" in result.output
    assert PASSWORD not in result.output
    with app.app_context():
        user = db.session.execute(select(StaffUser)).scalar_one()
        assert user.email == "boss@example.com" and user.name == "Bo Boss" and user.active
        assert PASSWORD not in user.password_hash
        assert user.password_hash.startswith(("scrypt:", "pbkdf2:"))
        assert user.check_password(PASSWORD) and not user.check_password(PASSWORD + "!")


def test_create_admin_reads_the_password_from_stdin(app, client, runner):
    result = runner.invoke(args=["create-admin", EMAIL, "--password-stdin"], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "Signed in" in Back(client).sign_in()


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("short pass\nshort pass\n", "at least 12 characters"),
        (f"{PASSWORD}\n{PASSWORD}?\n", "do not match"),
        ("\n\n\n", "Aborted"),
    ],
)
def test_create_admin_refuses_short_or_mismatched_passwords(app, runner, given, says):
    result = runner.invoke(args=["create-admin", EMAIL], input=given)
    assert result.exit_code != 0
    assert says in result.output
    with app.app_context():
        assert db.session.execute(select(StaffUser)).first() is None


def test_create_admin_refuses_a_short_password_from_stdin(app, runner):
    result = runner.invoke(args=["create-admin", EMAIL, "--password-stdin"], input="tiny\n")
    assert result.exit_code != 0 and "at least 12 characters" in result.output


def test_create_admin_refuses_an_existing_account_and_a_bad_email(app, runner, staff):
    again = runner.invoke(args=["create-admin", EMAIL], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert again.exit_code != 0 and "already has an account" in again.output
    bad = runner.invoke(args=["create-admin", "not-an-email"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert bad.exit_code != 0 and "not an email address" in bad.output


# Orders list -----------------------------------------------------------------------------------
@pytest.fixture
def orders(app):
    """Five orders over five days, in several states and on two gateways."""
    now = datetime(2030, 5, 10, 12, 0, tzinfo=UTC)
    made = {}
    with app.app_context():
        specs = [
            ("paid1", "Alice@Example.com", OrderState.PAID, "rbs", AttemptState.PAID, 4),
            ("held1", "bob@example.com", OrderState.AUTHORIZED, "rbs", AttemptState.AUTHORIZED, 3),
            (
                "open1",
                "carol@shop.test",
                OrderState.PENDING_PAYMENT,
                "altapay",
                AttemptState.PENDING,
                2,
            ),
            ("exp1", "dave@shop.test", OrderState.EXPIRED, "altapay", AttemptState.DECLINED, 1),
            ("new1", "erin@example.com", OrderState.PENDING_PAYMENT, None, None, 0),
        ]
        for key, email, state, gateway, attempt_state, days_ago in specs:
            order = make_order(email=email, state=state, created_at=now - timedelta(days=days_ago))
            if gateway:
                add_attempt(order, gateway=gateway, state=attempt_state)
            made[key] = order.number
    return made


def listed(page: Page) -> list[str]:
    return re.findall(r'<th scope="row"><a href="/admin/orders/(\d+)">', page.text)


def test_orders_list_shows_newest_first_with_their_payment(back, orders):
    page = back.get("/admin/orders")
    assert listed(page) == [orders[k] for k in ("new1", "exp1", "open1", "held1", "paid1")]
    assert "€25.00" in page
    assert "alice@example.com" in page.text.lower()
    row = page.text.split(f">{orders['held1']}</a>")[1].split("</tr>")[0]
    assert "authorized" in row and "bob@example.com" in row and "Card (BPC/RBS)" in row


def test_orders_list_filters_by_state_gateway_and_dates(back, orders):
    assert listed(back.get("/admin/orders?state=paid")) == [orders["paid1"]]
    assert set(listed(back.get("/admin/orders?gateway=altapay"))) == {
        orders["open1"],
        orders["exp1"],
    }
    dated = back.get("/admin/orders?date_from=2030-05-07&date_to=2030-05-08")
    assert listed(dated) == [orders["open1"], orders["held1"]]
    both = back.get("/admin/orders?state=pending_payment&gateway=altapay")
    assert listed(both) == [orders["open1"]]


def test_orders_search_matches_number_or_email_ignoring_case(back, orders):
    assert listed(back.get("/admin/orders?q=ALICE@example")) == [orders["paid1"]]
    assert set(listed(back.get("/admin/orders?q=SHOP.TEST"))) == {orders["open1"], orders["exp1"]}
    assert listed(back.get(f"/admin/orders?q={orders['held1']}")) == [orders["held1"]]
    # LIKE's wildcards are searched for as themselves.
    assert listed(back.get("/admin/orders?q=%25")) == []
    assert listed(back.get("/admin/orders?q=_")) == []


def test_orders_list_is_paginated_and_keeps_its_filters(app, back):
    app.config["ADMIN_ORDERS_PER_PAGE"] = 2
    with app.app_context():
        numbers = [make_order(email=f"p{n}@example.com").number for n in range(5)]
    first = back.get("/admin/orders?q=example.com")
    assert listed(first) == numbers[::-1][:2]
    assert "page 1 of 3" in first
    second = back.get(first.link("Next").removeprefix("http://localhost"))
    assert "q=example.com" in second.url
    assert listed(second) == numbers[::-1][2:4]
    assert listed(back.get("/admin/orders?q=example.com&page=3")) == numbers[:1]
    beyond = back.get("/admin/orders?page=99")
    assert beyond.status == 200 and "no orders on this page" in beyond.text.lower()


@pytest.mark.parametrize(
    "query",
    [
        "page=abc",
        "page=-1",
        "page=0",
        "page=99999999999999999999",
        "page=1%00",
        "state=bogus",
        "gateway=paypal",
        "date_from=yesterday",
        "date_to=2030-13-45",
        "q=" + "x" * 500,
    ],
)
def test_bad_filter_values_are_ignored_with_a_message(back, orders, query):
    page = back.get("/admin/orders?" + query)
    assert page.status == 200
    assert "were ignored" in page and 'role="alert"' in page.text
    assert len(listed(page)) == len(orders)  # the bad filter did not narrow the list


def test_a_to_date_before_the_from_date_is_ignored_with_a_message(back, orders):
    page = back.get("/admin/orders?date_from=2030-05-10&date_to=2030-05-01")
    assert "The &#39;to&#39; date is before the &#39;from&#39; date." in page.text
    assert listed(page) == [orders["new1"]]


@pytest.mark.parametrize(
    "query", ["q=%00%ff", "q=%27%3B--", "state=paid&state=on_hold", "q=%E2%80%AE", "page="]
)
def test_odd_filter_values_never_break_the_list(back, orders, query):
    page = back.get("/admin/orders?" + query)
    assert page.status == 200 and "Orders" in page


@contextmanager
def counting_queries(app):
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_orders_list_needs_the_same_few_queries_however_many_orders(app, back):
    def queries_for_page() -> int:
        with counting_queries(app) as statements:
            assert back.get("/admin/orders").status == 200
        return len(statements)

    with app.app_context():
        for _ in range(3):
            add_attempt(make_order())
    few = queries_for_page()
    with app.app_context():
        for _ in range(20):
            order = make_order()
            add_attempt(order, state=AttemptState.DECLINED)
            add_attempt(order)
    assert queries_for_page() == few <= 6


# Order page ------------------------------------------------------------------------------------
def test_order_page_needs_the_same_few_queries_however_many_payments(app, back, gateway):
    evidence = (("request", "POST /x", "{}"), ("response", "HTTP 200 from /x", "{}"))
    with app.app_context():
        small, big = make_order(), make_order()
        add_attempt(small, events=evidence)
        for _ in range(4):
            add_attempt(big, state=AttemptState.DECLINED, events=evidence * 3)
        numbers = small.number, big.number
    counts = []
    for number in numbers:
        with counting_queries(app) as statements:
            assert back.get(f"/admin/orders/{number}").status == 200
        counts.append(len(statements))
    # The staff's notes, the customer's other orders and the VAT rows are one query each.
    assert counts[0] == counts[1] <= 11, counts


def test_order_page_shows_lines_customer_history_and_evidence(app, back, gateway):
    with app.app_context():
        order = make_order(total=1250)
        db.session.add(
            OrderEvent(
                order_id=order.id,
                from_state=OrderState.PENDING_PAYMENT,
                to_state=OrderState.AUTHORIZED,
                note="payment authorized",
            )
        )
        db.session.commit()
        add_attempt(
            order,
            state=AttemptState.AUTHORIZED,
            authorized=1250,
            events=(
                ("request", "POST /register.do", '{"amount": "1250", "password": "[redacted]"}'),
                ("response", "HTTP 200 from /register.do", '{"orderId": "abc", "x": "<script>"}'),
                ("decision", "return: gateway says authorized", ""),
            ),
        )
        number = order.number
    page = back.get(f"/admin/orders/{number}")
    assert page.status == 200
    text = page.text
    for expected in (
        "Kenya Nyeri",
        "€12.50",
        "1 Main Street",
        "D01 F5P2",
        "ann@example.com",
        "order placed",
        "payment authorized",
        "POST /register.do",
        "gw-" + number + "-1",
        number + "_1",
        "411111**1111",
    ):
        assert expected in text, expected
    assert "<details><summary>Detail</summary><pre>{&#34;amount&#34;: &#34;1250&#34;" in text
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "The gateway's latest answer" in text


def buttons_on(page: Page) -> set[str]:
    # The payments', the fulfilment's and the whole order's buttons: the order's notes and mail
    # have tests of their own (tests/test_admin_orders_tools.py).
    others = {"Search", "Sign out", "Add the note", "Resend the confirmation"}
    return {b["text"] for f in page.forms for b in f.buttons} - others


def test_order_page_offers_only_what_the_payment_state_allows(app, back, gateway):
    held, _ = held_order(app)
    paid, _ = paid_order(app)
    with app.app_context():
        declined = make_order()
        add_attempt(declined, state=AttemptState.DECLINED)
        declined = declined.number

    page = back.get(f"/admin/orders/{held}")
    assert buttons_on(page) == {
        "Capture",
        "Void",
        "Check now",
        "Mark dispatched",
        "Cancel the order",
    }
    capture = page.form("/capture")
    assert capture.fields[next(k for k in capture.fields if k.endswith("-amount"))] == "25.00"

    page = back.get(f"/admin/orders/{paid}")
    assert buttons_on(page) == {"Refund", "Refund the chosen lines", "Mark dispatched"}

    page = back.get(f"/admin/orders/{declined}")
    assert buttons_on(page) == {"Cancel the order"}  # the order itself still waits for payment
    assert "No action is possible on this payment in its state." in page


def test_order_page_says_when_the_gateway_has_no_refund(app, back, gateway):
    gateway.supports_refund = False
    number, _ = paid_order(app)
    page = back.get(f"/admin/orders/{number}")
    assert "has no refund in its protocol" in page
    assert not any("/refund" in f.action for f in page.forms)


def test_unknown_order_or_payment_is_not_found(app, back, gateway):
    number, attempt_id = held_order(app)
    assert back.get("/admin/orders/99999999").status == 404
    assert back.get("/admin/orders/" + "9" * 40).status == 404
    form = back.get(f"/admin/orders/{number}").form("/capture")
    form.action = form.action.replace(f"/payments/{attempt_id}/", "/payments/424242/")
    assert back.submit(form).status == 404


# Actions ---------------------------------------------------------------------------------------
def amount_field(form: Form) -> str:
    return next(k for k in form.fields if k.endswith("-amount"))


def test_partial_capture_then_partial_refund_then_over_refund_refused(app, back, gateway):
    number, attempt_id = held_order(app, total=2500)
    page = back.get(f"/admin/orders/{number}")
    form = page.form("/capture")
    page = back.submit(form, **{amount_field(form): "20.00"})
    assert "Capture of €20.00 done. The payment is now paid." in page
    assert (
        "From the evidence: back office capture:2000: gateway says paid (stand-in deposited)"
        in page
    )
    assert gateway.calls == [("capture", 2000)]
    attempt = attempt_row(app, attempt_id)
    assert (attempt.state, attempt.captured, attempt.action) == (AttemptState.PAID, 2000, None)

    form = page.form("/refund")
    assert form.fields[amount_field(form)] == "20.00"
    page = back.submit(form, **{amount_field(form): "5.50"})
    assert "Refund of €5.50 done" in page
    attempt = attempt_row(app, attempt_id)
    assert (attempt.state, attempt.refunded) == (AttemptState.PARTIALLY_REFUNDED, 550)

    form = page.form("/refund")
    page = back.submit(form, **{amount_field(form): "14.51"})
    assert page.status == 422
    assert "Refunding more than was captured is impossible: at most €14.50 can be refunded." in page
    assert 'role="alert"' in page.text and 'aria-invalid="true"' in page.text
    assert gateway.calls == [("capture", 2000), ("refund", 550)]
    assert attempt_row(app, attempt_id).refunded == 550


@pytest.mark.parametrize("typed", ["abc", "12.505", "", "0", "-1", "1e3", "25.01", "€5"])
def test_capture_amount_that_is_not_usable_is_a_form_error(app, back, gateway, typed):
    number, attempt_id = held_order(app)
    form = back.get(f"/admin/orders/{number}").form("/capture")
    page = back.submit(form, **{amount_field(form): typed})
    assert page.status == 422
    assert re.search(r'class="field-error"[^>]*role="alert"', page.text)
    assert gateway.calls == []
    assert attempt_row(app, attempt_id).state == AttemptState.AUTHORIZED


def test_void_releases_a_held_payment(app, back, gateway):
    number, attempt_id = held_order(app)
    page = back.submit(back.get(f"/admin/orders/{number}").form("/void"), button="Void")
    assert "Void done. The payment is now voided." in page
    assert attempt_row(app, attempt_id).state == AttemptState.VOIDED
    with app.app_context():
        assert (
            db.session.execute(select(Order.state).where(Order.number == number)).scalar_one()
            == OrderState.CANCELLED
        )
    assert "cancelled" in page and "voided" in page


def test_a_second_click_while_an_action_is_under_way_is_refused(app, back, gateway):
    number, attempt_id = held_order(app)
    form = back.get(f"/admin/orders/{number}").form("/capture")
    with app.app_context():  # another operator's capture has claimed the payment meanwhile
        claimed = db.session.get(PaymentAttempt, attempt_id)
        claimed.action, claimed.action_at = "capture:2500", datetime.now(UTC)
        db.session.commit()
    page = back.submit(form)
    assert "Another action on this payment is under way" in page
    # The other operator's call is simply in progress: nothing says its answer was lost.
    assert "the gateway has not answered yet" in page and "may have been lost" not in page
    assert gateway.calls == []


def test_a_second_capture_after_the_first_finished_is_refused(app, back, gateway):
    number, _ = held_order(app)
    form = back.get(f"/admin/orders/{number}").form("/capture")
    back.submit(form)
    page = back.submit(form)
    assert "Nothing can be captured on this payment: it is paid." in page
    assert gateway.calls == [("capture", 2500)]


def test_lost_gateway_answer_leaves_the_outcome_to_the_reconciler(app, back, gateway):
    number, attempt_id = held_order(app)
    gateway.fail = GatewayError("stand-in: read timeout")
    page = back.submit(back.get(f"/admin/orders/{number}").form("/capture"))
    assert "The gateway did not answer; the outcome will be checked automatically." in page
    attempt = attempt_row(app, attempt_id)
    assert (attempt.state, attempt.action) == (AttemptState.AUTHORIZED, "capture:2500")
    assert "has not finished" in page
    # A fresh claim still blocks another try until the gateway's word is had.
    page = back.submit(page.form("/check"), button="Check now")
    assert "is under way. Check again in a minute." in page


def test_check_now_resolves_a_lost_action_from_the_gateway_status(app, back, gateway):
    number, attempt_id = held_order(app)
    with app.app_context():
        attempt = db.session.get(PaymentAttempt, attempt_id)
        attempt.action = "capture:2500"
        attempt.action_at = datetime.now(UTC) - timedelta(minutes=5)
        db.session.commit()
    gateway.status = Result(
        outcome=Outcome.PAID, amount=2500, currency="EUR", captured=2500, codes="orderStatus=2"
    )
    page = back.submit(back.get(f"/admin/orders/{number}").form("/check"), button="Check now")
    assert "authorized → paid" in page
    attempt = attempt_row(app, attempt_id)
    assert (attempt.state, attempt.captured, attempt.action) == (AttemptState.PAID, 2500, None)


def test_gateway_refusal_is_shown_and_changes_nothing(app, back, gateway):
    number, attempt_id = held_order(app)
    gateway.fail = GatewayRefused("Deposit amount exceeds the approved amount", code="5")
    page = back.submit(back.get(f"/admin/orders/{number}").form("/capture"))
    assert "The gateway refused: Deposit amount exceeds the approved amount" in page
    attempt = attempt_row(app, attempt_id)
    assert (attempt.state, attempt.action) == (AttemptState.AUTHORIZED, None)


def test_refund_on_a_gateway_without_refunds_is_refused(app, back, gateway):
    number, _ = paid_order(app)
    form = back.get(f"/admin/orders/{number}").form("/refund")
    gateway.supports_refund = False
    page = back.submit(form)
    assert "has no refund in its protocol" in page
    assert gateway.calls == []


def test_check_now_applies_the_gateway_answer(app, back, gateway):
    with app.app_context():
        order = make_order()
        attempt_id = add_attempt(order, state=AttemptState.REDIRECTED).id
        number = order.number
    gateway.status = Result(
        outcome=Outcome.AUTHORIZED, amount=2500, currency="EUR", codes="orderStatus=1"
    )
    page = back.submit(back.get(f"/admin/orders/{number}").form("/check"), button="Check now")
    assert "Checked with the gateway: redirected → authorized." in page
    assert attempt_row(app, attempt_id).state == AttemptState.AUTHORIZED
    assert "operator check by operator@example.com" in page


def test_action_forms_need_their_csrf_token(app, back, gateway):
    number, attempt_id = held_order(app)
    url = f"/admin/orders/{number}/payments/{attempt_id}/capture"
    response = back.client.post(url, data={f"capture-{attempt_id}-amount": "1.00"})
    assert response.status_code == 400
    assert gateway.calls == []


# Reconciliation --------------------------------------------------------------------------------
def test_reconciliation_lists_open_held_and_stuck_payments_only(app, back, gateway):
    with app.app_context():
        keep = {}
        for state in (
            AttemptState.CREATED,
            AttemptState.REDIRECTED,
            AttemptState.PENDING,
            AttemptState.UNKNOWN,
            AttemptState.AUTHORIZED,
        ):
            keep[state] = add_attempt(make_order(), state=state).order.number
        stuck = add_attempt(make_order(), state=AttemptState.PAID)
        stuck.action = "refund:100"
        db.session.commit()
        keep["stuck"] = stuck.order.number
        done = [
            add_attempt(make_order(), state=s).order.number
            for s in (AttemptState.PAID, AttemptState.DECLINED, AttemptState.REFUNDED)
        ]
    page = back.get("/admin/reconciliation")
    for number in keep.values():
        assert f">{number}</a>" in page.text
    for number in done:
        assert f">{number}</a>" not in page.text
    assert "refund:100" in page


def test_check_with_gateway_shows_its_answer_and_changes_nothing(app, back, gateway):
    with app.app_context():
        attempt_id = add_attempt(make_order(), state=AttemptState.PENDING).id
    gateway.status = Result(
        outcome=Outcome.PAID,
        amount=2500,
        currency="EUR",
        captured=2500,
        codes="orderStatus=2 actionCode=0",
    )
    page = back.get("/admin/reconciliation")
    page = back.submit(page.form(f"/reconciliation/{attempt_id}/ask"))
    assert "the gateway says paid (orderStatus=2 actionCode=0); ours is pending." in page
    row = page.text.split(f'id="payment-{attempt_id}"')[1].split("</tr>")[0]
    assert "orderStatus=2 actionCode=0" in row and "state-pending" in row and "state-paid" in row
    attempt = attempt_row(app, attempt_id)
    assert attempt.state == AttemptState.PENDING and attempt.captured == 0
    with app.app_context():  # the exchange itself is kept as evidence
        kinds = (
            db.session.execute(
                select(PaymentEvent.kind).where(PaymentEvent.attempt_id == attempt_id)
            )
            .scalars()
            .all()
        )
        assert kinds == ["request", "response", "decision"]


def test_check_with_gateway_that_does_not_answer_says_unknown(app, back, gateway):
    with app.app_context():
        attempt_id = add_attempt(make_order(), state=AttemptState.UNKNOWN).id
    page = back.submit(back.get("/admin/reconciliation").form(f"/reconciliation/{attempt_id}/ask"))
    assert "the gateway says unknown (stand-in: no answer)" in page
    assert attempt_row(app, attempt_id).state == AttemptState.UNKNOWN


def test_check_now_from_reconciliation_settles_the_payment(app, back, gateway):
    with app.app_context():
        order = make_order()
        attempt_id = add_attempt(order, state=AttemptState.PENDING).id
        number = order.number
    gateway.status = Result(
        outcome=Outcome.PAID, amount=2500, currency="EUR", captured=2500, codes="orderStatus=2"
    )
    page = back.get("/admin/reconciliation")
    page = back.submit(page.form(f"/reconciliation/{attempt_id}/check"), button="Check now")
    assert f"Order {number}: Checked with the gateway: pending → paid." in page
    assert f">{number}</a>" not in page.text.split("<h1>Open payments</h1>")[1]
    with app.app_context():
        assert (
            db.session.execute(select(Order.state).where(Order.number == number)).scalar_one()
            == OrderState.PAID
        )


# The pages themselves --------------------------------------------------------------------------
def test_admin_pages_have_no_script_no_inline_style_and_a_label_for_every_input(
    app, client, staff, gateway
):
    number, _ = held_order(app)
    paid, _ = paid_order(app)
    office = Back(client)
    pages = [office.get("/admin/sign-in")]
    office.sign_in()
    pages += [
        office.get(url)
        for url in (
            "/admin/orders",
            f"/admin/orders/{number}",
            f"/admin/orders/{paid}",
            "/admin/reconciliation",
        )
    ]
    for page in pages:
        assert page.status == 200
        text = page.text
        assert "<script" not in text.lower()
        assert not re.search(r"\sstyle=", text) and not re.search(r"\son[a-z]+=", text)
        assert "css/admin.css" in text
        labels = set(re.findall(r'<label[^>]*for="([^"]+)"', text))
        for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", text):
            if re.search(r'type="(hidden|submit)"', tag):
                continue
            field_id = re.search(r'id="([^"]+)"', tag).group(1)
            assert field_id in labels, (page.url, tag)
        for th in re.findall(r"<th\b[^>]*>", text):
            assert "scope=" in th, (page.url, th)


# On the live sandbox gateway ------------------------------------------------------------------
def operator_on(shop) -> Browser:
    """An operator signed in to the live shop's back office."""
    make_staff(shop.app)
    operator = Browser()
    page = operator.get(f"{shop.url}/admin/orders")
    assert "Sign in to the back office" in page
    page = operator.submit(page.form("/admin/sign-in"), email=EMAIL, password=PASSWORD)
    assert "Signed in as Olive Operator" in page
    return operator


def test_operator_captures_part_refunds_part_and_cannot_over_refund_on_the_sandbox(
    make_shop, sandbox
):
    shop = make_shop(RBS_TWO_PHASE=True)
    order, attempt = held_on_the_sandbox(shop, price=2500)
    operator = operator_on(shop)
    page = operator.get(f"{shop.url}/admin/orders/{order.number}")
    assert "€25.00" in page and "411111**1111" in page

    form = page.form("/capture")
    page = operator.submit(form, **{amount_field(form): "20.00"})
    assert "Capture of €20.00 done. The payment is now paid." in page
    assert "From the evidence: back office capture:2000: gateway says paid (orderStatus=2" in page
    assert shop_attempt(shop, attempt.id) == (AttemptState.PAID, 2500, 2000, 0)
    gateway_side = at_the_sandbox(sandbox, attempt.reference)
    assert (gateway_side["depositedAmount"], gateway_side["refundedAmount"]) == (2000, 0)

    form = page.form("/refund")
    assert form.fields[amount_field(form)] == "20.00"  # all that was captured, by default
    page = operator.submit(form, **{amount_field(form): "7.50"})
    assert "Refund of €7.50 done. The payment is now partially refunded." in page
    assert shop_attempt(shop, attempt.id) == (AttemptState.PARTIALLY_REFUNDED, 2500, 2000, 750)
    gateway_side = at_the_sandbox(sandbox, attempt.reference)
    assert (gateway_side["depositedAmount"], gateway_side["refundedAmount"]) == (2000, 750)

    form = page.form("/refund")
    page = operator.submit(form, **{amount_field(form): "12.51"})
    assert page.status == 422
    assert "Refunding more than was captured is impossible: at most €12.50 can be refunded." in page
    assert shop_attempt(shop, attempt.id) == (AttemptState.PARTIALLY_REFUNDED, 2500, 2000, 750)
    assert at_the_sandbox(sandbox, attempt.reference)["refundedAmount"] == 750

    history = operator.get(f"{shop.url}/admin/orders/{order.number}")
    assert (
        "partially refunded" in history and "operator@example.com asked for refund:750" in history
    )


def test_operator_voids_a_held_payment_on_the_sandbox(make_shop, sandbox):
    shop = make_shop(RBS_TWO_PHASE=True)
    order, attempt = held_on_the_sandbox(shop, price=1800)
    operator = operator_on(shop)

    page = operator.get(f"{shop.url}/admin/reconciliation")
    page = operator.submit(page.form(f"/reconciliation/{attempt.id}/ask"))
    assert "the gateway says authorized" in page and "ours is authorized" in page

    page = operator.get(f"{shop.url}/admin/orders/{order.number}")
    page = operator.submit(page.form("/void"), button="Void")
    assert "Void done. The payment is now voided." in page
    assert shop_attempt(shop, attempt.id) == (AttemptState.VOIDED, 1800, 0, 0)
    with shop.db() as session:
        assert session.get(Order, order.id).state == OrderState.CANCELLED
    gateway_side = at_the_sandbox(sandbox, attempt.reference)
    assert gateway_side["reversedDate"] is not None and gateway_side["depositedAmount"] == 0
    # A held payment is released once: the form is gone, and a replayed POST changes nothing.
    assert not any("/void" in f.action for f in page.forms)


def test_a_paid_one_phase_payment_reversed_at_the_gateway_reads_voided(make_shop, sandbox):
    shop = make_shop()
    _, slug = product(shop, name="Kenya AA", price=1900, stock=5)
    customer = Browser()
    to_gateway(shop, customer, slug)
    pay_rbs(customer)
    order, [attempt] = latest_order(shop)
    assert (attempt.state, attempt.captured) == (AttemptState.PAID, 1900)
    # The merchant cancels the payment in the gateway's own back office, the same day.
    reversed_ = requests.post(
        f"{sandbox.url}/rbs/payment/rest/reverse.do",
        data={
            "userName": "sandbox-merchant",
            "password": "sandbox-password",
            "orderId": attempt.gateway_id,
        },
        timeout=10,
    ).json()
    assert reversed_["errorCode"] == "0"
    # The gateway's "reversed" callback reaches the shop, which asks for the order's status.
    assert wait_for(
        lambda: (
            [
                job["state"]
                for job in sandbox.state().get("delivery", [])
                if job["data"].get("operation") == "reversed"
            ]
            == ["delivered"]
        )
    )
    assert shop_attempt(shop, attempt.id) == (AttemptState.VOIDED, 1900, 0, 0)
    with shop.db() as session:
        assert session.get(Order, order.id).state == OrderState.CANCELLED


def test_operator_captures_refunds_and_releases_on_the_altapay_sandbox(make_shop, sandbox):
    shop = make_shop(GATEWAYS="rbs,altapay")
    order, attempt = held_on_altapay(shop, price=2500)
    other, released = held_on_altapay(shop, price=1200)
    operator = operator_on(shop)

    page = operator.get(f"{shop.url}/admin/orders/{order.number}")
    assert "Card (AltaPay)" in page
    form = page.form("/capture")
    page = operator.submit(form, **{amount_field(form): "15.00"})
    assert "Capture of €15.00 done. The payment is now paid." in page
    assert shop_attempt(shop, attempt.id) == (AttemptState.PAID, 2500, 1500, 0)
    form = page.form("/refund")
    page = operator.submit(form, **{amount_field(form): "5.00"})
    assert "Refund of €5.00 done. The payment is now partially refunded." in page
    form = page.form("/refund")
    page = operator.submit(form, **{amount_field(form): "10.01"})
    assert "Refunding more than was captured is impossible: at most €10.00 can be refunded." in page
    assert shop_attempt(shop, attempt.id) == (AttemptState.PARTIALLY_REFUNDED, 2500, 1500, 500)
    gateway_side = altapay_transaction(sandbox, attempt.reference)
    assert (gateway_side["captured"], gateway_side["refunded"]) == (1500, 500)

    page = operator.get(f"{shop.url}/admin/orders/{other.number}")
    page = operator.submit(page.form("/void"), button="Void")
    assert "Void done. The payment is now voided." in page
    assert shop_attempt(shop, released.id)[0] == AttemptState.VOIDED
    gateway_side = altapay_transaction(sandbox, released.reference)
    assert gateway_side["status"] == "released" and gateway_side["captured"] == 0


def test_interpay_payment_page_says_refunds_are_made_in_the_gateways_back_office(
    make_shop, sandbox
):
    shop = make_shop(GATEWAYS="rbs,interpay", CURRENCY="CAD")
    _, slug = product(shop, name="Kona", price=2500, stock=5)
    customer = Browser()
    page = to_gateway(shop, customer, slug, gateway="interpay")
    page = customer.submit(
        page.form("HOSTPYMT"),
        button="pay",
        card_number="4111111111111111",
        expiry="12/34",
        cvv="123",
        cardholder="Ann Example",
    )
    order, [attempt] = latest_order(shop)
    assert attempt.state == AttemptState.PAID  # the shop's Ack turned the hold into a payment

    operator = operator_on(shop)
    page = operator.get(f"{shop.url}/admin/orders/{order.number}")
    assert "Card (InterPay) has no refund in its protocol" in page
    assert "CA$25.00" in page
    assert not any(f.action.endswith(("/refund", "/capture", "/void")) for f in page.forms)


def test_a_capture_whose_answer_is_lost_is_resolved_from_the_gateways_status(make_shop, sandbox):
    shop = make_shop(RBS_TWO_PHASE=True, GATEWAY_READ_TIMEOUT=2.0)
    order, attempt = held_on_the_sandbox(shop, price=2500)
    operator = operator_on(shop)
    page = operator.get(f"{shop.url}/admin/orders/{order.number}")
    # The sandbox does the deposit, but only after the shop has stopped waiting for its answer.
    sandbox.arm("rbs", "deposit", "hang", seconds=3.0)

    page = operator.submit(page.form("/capture"))

    assert "The gateway did not answer; the outcome will be checked automatically." in page
    assert wait_for(lambda: at_the_sandbox(sandbox, attempt.reference)["depositedAmount"] == 2500)
    with shop.db() as session:  # the claim stays until the gateway's word is had
        claimed = session.get(PaymentAttempt, attempt.id)
        assert claimed.action == "capture:2500"
        claimed.action_at = datetime.now(UTC) - timedelta(minutes=5)  # an old claim: not in flight
        session.commit()
    page = operator.submit(page.form("/check"), button="Check now")
    assert shop_attempt(shop, attempt.id) == (AttemptState.PAID, 2500, 2500, 0)
    with shop.db() as session:
        assert session.get(PaymentAttempt, attempt.id).action is None
    assert "Capture" not in {b["text"] for f in page.forms for b in f.buttons}
