"""The admin's tools around orders: the dashboard, the CSV export of the filtered list, internal
notes, the customer's other orders, and sending the confirmation again."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from storefront.admin.models import AuditEntry, OrderNote
from storefront.extensions import db
from storefront.orders.models import Order, OrderEvent, OrderState, OutboxMessage
from storefront.payments.models import AttemptState, PaymentAttempt
from storefront.templating import money
from tests.admin_steps import EMAIL, Back, make_staff
from tests.browser import Browser
from tests.journeys import latest_order, pay_rbs, product, to_gateway
from tests.test_admin import add_attempt, counting_queries, make_order


@pytest.fixture
def back(client, app):
    make_staff(app)
    office = Back(client)
    office.sign_in()
    return office


def paid_at(
    when: datetime, *, total: int = 2500, currency: str = "EUR", email: str = "ann@example.com"
) -> Order:
    """An order paid (captured in full) at ``when``; call inside an app context."""
    order = make_order(state=OrderState.PAID, total=total, created_at=when, email=email)
    order.currency = currency
    db.session.add(
        OrderEvent(
            order_id=order.id,
            at=when,
            from_state=OrderState.PENDING_PAYMENT,
            to_state=OrderState.PAID,
            note="payment captured",
        )
    )
    db.session.commit()
    add_attempt(order, state=AttemptState.PAID, authorized=total, captured=total)
    return order


def count_on(page_text: str, name: str) -> int:
    return int(_count(page_text, name).group(2))


def link_of(page_text: str, name: str) -> str:
    return html.unescape(_count(page_text, name).group(1))


def _count(page_text: str, name: str) -> re.Match:
    found = re.search(rf'id="count-{name}"><a href="([^"]*)">(\d+)</a>', page_text)
    assert found, page_text
    return found


def section(page_text: str, section_id: str) -> str:
    start = page_text.index(f'id="{section_id}"')
    return page_text[start : page_text.index("</section>", start)]


# The dashboard ---------------------------------------------------------------------------------
def test_admin_front_page_is_the_dashboard_and_needs_sign_in(client, app):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/admin/sign-in"
    make_staff(app)
    office = Back(client)
    office.sign_in()
    page = office.get("/admin/")
    assert page.status == 200
    assert "<h1>Dashboard</h1>" in page.text
    assert "UTC days" in page.text


def test_dashboard_sums_what_was_paid_today_and_in_the_last_7_days_by_currency(app, back):
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    with app.app_context():
        paid_at(midnight + timedelta(seconds=1), total=2500)
        paid_at(midnight + timedelta(seconds=2), total=1000, currency="SEK")
        paid_at(midnight - timedelta(days=3), total=700)
        paid_at(midnight - timedelta(days=6, hours=-1), total=300)
        old = paid_at(midnight - timedelta(days=10), total=9900)  # out of both periods
        # A note written today to the old paid order's history repeats its state: no new payment.
        db.session.add(
            OrderEvent(
                order_id=old.id,
                at=now,
                from_state=OrderState.PAID,
                to_state=OrderState.PAID,
                note="dispatched by someone",
            )
        )
        db.session.commit()
        # Placed today but never paid: not taken.
        make_order(state=OrderState.PENDING_PAYMENT, total=5000)
    page = back.get("/admin/")
    today = section(page.text, "takings-today")
    week = section(page.text, "takings-week")
    with app.test_request_context():
        assert money(2500, "EUR") in today and money(1000, "SEK") in today
        assert money(9900, "EUR") not in today and money(12400, "EUR") not in today
        assert money(2500 + 700 + 300, "EUR") in week and money(1000, "SEK") in week
    assert "from 1 order" in today
    assert "from 3 orders" in week


def test_dashboard_counts_what_waits_and_links_to_the_lists(app, back):
    now = datetime.now(UTC)
    with app.app_context():
        add_attempt(make_order(), state=AttemptState.REDIRECTED)
        held = make_order(state=OrderState.AUTHORIZED)
        add_attempt(held, state=AttemptState.AUTHORIZED, authorized=2500)
        held_number = held.number
        make_order(state=OrderState.ON_HOLD)
        old_unknown = add_attempt(make_order(), state=AttemptState.UNKNOWN)
        new_unknown = add_attempt(make_order(), state=AttemptState.UNKNOWN)
        db.session.get_one(PaymentAttempt, old_unknown.id).created_at = now - timedelta(minutes=16)
        db.session.get_one(PaymentAttempt, new_unknown.id).created_at = now - timedelta(minutes=5)
        db.session.commit()
    page = back.get("/admin/")
    assert count_on(page.text, "open-payments") == 3  # redirected and the two unknown
    assert count_on(page.text, "held-orders") == 1
    assert count_on(page.text, "orders-on-hold") == 1
    assert count_on(page.text, "unknown-payments") == 1
    assert "more than 15 minutes" in page.text
    assert held_number in back.get(link_of(page.text, "held-orders")).text
    assert link_of(page.text, "orders-on-hold") == "/admin/orders?state=on_hold"
    assert link_of(page.text, "open-payments") == "/admin/reconciliation"
    assert link_of(page.text, "unknown-payments") == "/admin/reconciliation"


def test_dashboard_queries_are_the_same_however_many_orders(app, back):
    now = datetime.now(UTC)
    counts = []
    for many in (1, 30):
        with app.app_context():
            for _ in range(many):
                paid_at(now)
        with counting_queries(app) as statements:
            assert back.get("/admin/").status == 200
        counts.append(len(statements))
    assert counts[0] == counts[1]


def test_a_payment_on_the_sandbox_shows_in_todays_takings(shop):
    _, slug = product(shop, name="Sidamo", price=1850, stock=5)
    customer = Browser()
    to_gateway(shop, customer, slug)
    pay_rbs(customer)
    order, attempts = latest_order(shop)
    assert order.state == OrderState.PAID and attempts[0].captured == 1850
    make_staff(shop.app)
    office = Back(shop.app.test_client())
    office.sign_in()
    page = office.get("/admin/")
    with shop.app.test_request_context():
        assert money(1850, order.currency) in section(page.text, "takings-today")
    assert count_on(page.text, "open-payments") == 0


# The CSV export --------------------------------------------------------------------------------
FORMULAS = ['=HYPERLINK("http://x")', "+1+2", "-3", "@SUM(A1)", "\tTab", "\rReturn"]


def test_csv_keeps_the_filters_and_defuses_formulas(app, back):
    with app.app_context():
        for name in FORMULAS:
            order = paid_at(datetime.now(UTC), total=1250)
            order.name = name
        unpaid = make_order(state=OrderState.PENDING_PAYMENT)
        unpaid.name = "Not Paid"
        db.session.commit()
        unpaid_number = unpaid.number
    page = back.get("/admin/orders?state=paid")
    link = page.link("Download these orders as CSV")
    assert "state=paid" in link
    response = back.client.get(link.removeprefix("http://localhost"))
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == [
        "Number",
        "Placed at",
        "State",
        "Customer name",
        "Email",
        "Total",
        "Currency",
        "Payment gateway",
        "Payment state",
    ]
    body = rows[1:]
    assert len(body) == len(FORMULAS)
    assert unpaid_number not in {row[0] for row in body}
    # Newest first, so the last one made is the first row; every formula got its quote.
    assert [row[3] for row in body] == ["'" + name for name in reversed(FORMULAS)]
    first = body[-1]
    assert first[3] == '\'=HYPERLINK("http://x")'
    assert first[2] == "paid"
    assert first[4] == "ann@example.com"
    assert first[5:] == ["12.50", "EUR", "rbs", "paid"]
    assert datetime.fromisoformat(first[1]).tzinfo is not None


def test_csv_of_an_ordinary_name_is_left_as_it_is(app, back):
    with app.app_context():
        make_order(total=900, email="bo@example.com")
    response = back.client.get("/admin/orders.csv?q=bo@example")
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert [row[3:6] for row in rows[1:]] == [["Ann Example", "bo@example.com", "9.00"]]
    assert rows[1][7:] == ["", ""]  # no payment yet


def test_csv_export_needs_staff_sign_in(client, app):
    with app.app_context():
        make_order()
    response = client.get("/admin/orders.csv?state=paid")
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/admin/sign-in"


# Internal notes --------------------------------------------------------------------------------
def test_a_note_shows_in_the_history_with_its_author_and_is_audited(app, back):
    with app.app_context():
        order = make_order(state=OrderState.PAID)
        number, token = order.number, order.receipt_token
    page = back.get(f"/admin/orders/{number}")
    page = back.submit(page.form("/notes"), **{"note-text": "Called her: wants it by Friday."})
    assert "Note added." in page.text
    history = section(page.text, "history")
    assert "Called her: wants it by Friday." in history
    assert "Note by Olive Operator" in history and EMAIL in history
    with app.app_context():
        note = db.session.execute(select(OrderNote)).scalar_one()
        assert note.author == EMAIL and note.at is not None
        audit = db.session.execute(select(AuditEntry)).scalar_one()
        assert (audit.actor, audit.action, audit.subject) == (EMAIL, "order.note", number)
    # Never the customer's to see.
    receipt = back.client.get(f"/order/{token}")
    assert receipt.status_code == 200
    assert "wants it by Friday" not in receipt.get_data(as_text=True)


@pytest.mark.parametrize(
    ("text", "error"),
    [("x" * 2001, "at most 2,000 characters"), ("   ", "Write the note before adding it.")],
)
def test_a_note_too_long_or_empty_is_a_clear_form_error(app, back, text, error):
    with app.app_context():
        number = make_order().number
    page = back.get(f"/admin/orders/{number}")
    page = back.submit(page.form("/notes"), **{"note-text": text})
    assert page.status == 422
    assert error in page.text
    assert 'role="alert"' in section(page.text, "history")
    with app.app_context():
        assert db.session.execute(select(OrderNote)).first() is None


def test_a_note_at_the_limit_is_kept_whole(app, back):
    with app.app_context():
        number = make_order().number
    page = back.get(f"/admin/orders/{number}")
    back.submit(page.form("/notes"), **{"note-text": "y" * 2000})
    with app.app_context():
        assert len(db.session.execute(select(OrderNote.text)).scalar_one()) == 2000


def test_a_note_without_the_csrf_token_is_refused(app, back):
    with app.app_context():
        number = make_order().number
    response = back.client.post(f"/admin/orders/{number}/notes", data={"note-text": "forged"})
    assert response.status_code == 400
    with app.app_context():
        assert db.session.execute(select(OrderNote)).first() is None


# The customer's other orders -------------------------------------------------------------------
def test_other_orders_by_the_same_email_whatever_its_case_newest_first_at_most_20(app, back):
    start = datetime.now(UTC) - timedelta(days=30)
    with app.app_context():
        this = make_order(email="Ann@Example.com", created_at=start)
        others = [
            make_order(email="ann@example.COM", created_at=start + timedelta(hours=n)).number
            for n in range(1, 23)
        ]
        stranger = make_order(email="bob@example.com").number
        number = this.number
    page = back.get(f"/admin/orders/{number}")
    listed = section(page.text, "other-orders")
    shown = re.findall(r'href="/admin/orders/(\d+)"', listed)
    assert shown == list(reversed(others))[:20]
    assert stranger not in listed and number not in shown
    assert "All orders with this email" in listed


def test_an_only_order_says_there_is_no_other(app, back):
    with app.app_context():
        number = make_order(email="solo@example.com").number
    page = back.get(f"/admin/orders/{number}")
    assert "No other order was placed with solo@example.com." in page.text


# Sending the confirmation again ----------------------------------------------------------------
def _mails(app, number: str) -> list[Path]:
    return sorted((Path(app.instance_path) / "mail").glob(f"{number}-order_confirmation*.eml"))


def test_resend_queues_a_distinct_confirmation_once_per_click(app, back):
    with app.app_context():
        order = make_order(state=OrderState.PAID)
        db.session.add(OutboxMessage(kind="order_confirmation", order_id=order.id))
        db.session.commit()
        number = order.number
    page = back.get(f"/admin/orders/{number}")
    form = page.form("/resend-confirmation")
    page = back.submit(form)
    assert "The confirmation was queued again for ann@example.com (resend 1)." in page.text
    assert "sent again 1 time so far" in page.text
    # The same page posted again (a double click) queues nothing more.
    again = back.submit(form)
    assert "already sent again" in again.text
    # A fresh page may send it once more, deliberately.
    back.submit(back.get(f"/admin/orders/{number}").form("/resend-confirmation"))
    with app.app_context():
        kinds = db.session.execute(
            select(OutboxMessage.kind).where(OutboxMessage.order_id == order.id)
        ).scalars()
        assert sorted(kinds) == [
            "order_confirmation",
            "order_confirmation:resend:1",
            "order_confirmation:resend:2",
        ]
        audit = db.session.execute(select(AuditEntry.action, AuditEntry.actor)).all()
        assert audit == [("order.resend_confirmation", EMAIL)] * 2
        notes = db.session.execute(
            select(OrderEvent.note).where(OrderEvent.order_id == order.id)
        ).scalars()
        assert sum("confirmation mail sent again" in note for note in notes) == 2
    mails = _mails(app, number)
    assert len(mails) == 3  # the first confirmation, then the two resends
    assert all(f"order {number} confirmed" in mail.read_text() for mail in mails)


def test_an_unpaid_order_has_no_confirmation_to_resend(app, back):
    with app.app_context():
        number = make_order(state=OrderState.PENDING_PAYMENT).number
    page = back.get(f"/admin/orders/{number}")
    assert not any("/resend-confirmation" in f.action for f in page.forms)
    assert "No confirmation to send again" in page.text
    fields = page.form("/notes").fields
    token = next(value for name, value in fields.items() if name.endswith("csrf_token"))
    response = back.client.post(
        f"/admin/orders/{number}/resend-confirmation",
        data={"csrf_token": token, "resend-sent": "0"},
        follow_redirects=True,
    )
    assert "has no confirmation to send again" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.execute(select(OutboxMessage)).first() is None
