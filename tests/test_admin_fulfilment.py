"""Fulfilment in the admin: marking an order dispatched, once, with the customer's mail."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from storefront.admin.models import AuditEntry
from storefront.extensions import db
from storefront.orders.models import OrderState, OutboxMessage
from storefront.orders.shipping import Shipment
from storefront.payments.models import PaymentAttempt
from tests.admin_steps import EMAIL, Back, held_on_the_sandbox, make_staff
from tests.test_admin import make_order


@pytest.fixture
def back(client, app):
    make_staff(app)
    office = Back(client)
    office.sign_in()
    return office


def _order(app, state=OrderState.PAID) -> str:
    with app.app_context():
        order = make_order(state=state)
        db.session.commit()
        return order.number


def test_dispatch_records_it_once_and_mails_the_tracking_number(app, back):
    number = _order(app)
    page = back.get(f"/admin/orders/{number}")
    page = back.submit(page.form("/dispatch"), carrier="An Post", tracking="CE123456789IE")
    assert "marked dispatched" in page.text
    assert "CE123456789IE" in page.text
    assert "/dispatch" not in "".join(f.action for f in page.forms)
    with app.app_context():
        shipment = db.session.execute(select(Shipment)).scalar_one()
        assert shipment.dispatched_by == EMAIL
        audit = db.session.execute(select(AuditEntry)).scalars().all()
        assert [a.action for a in audit] == ["order.dispatch"]
        kinds = db.session.execute(select(OutboxMessage.kind)).scalars().all()
        assert kinds.count("dispatched") == 1
    mails = list((Path(app.instance_path) / "mail").glob(f"{number}-dispatched-*.eml"))
    assert len(mails) == 1 and "CE123456789IE" in mails[0].read_text()
    # A second try is refused: one dispatch, one mail.
    response = back.client.post(
        f"/admin/orders/{number}/dispatch",
        data={
            "carrier": "DHL",
            "tracking": "X123",
            "csrf_token": page.form("").fields.get("csrf_token", ""),
        },
        follow_redirects=True,
    )
    assert response.status_code == 200
    with app.app_context():
        assert len(db.session.execute(select(Shipment)).scalars().all()) == 1


@pytest.mark.parametrize(
    ("carrier", "tracking"), [("", "CE1"), ("An Post", "x"), ("A" * 61, "CE123"), ("<b>", "CE12")]
)
def test_bad_carrier_or_tracking_is_a_clear_message(app, back, carrier, tracking):
    number = _order(app)
    page = back.get(f"/admin/orders/{number}")
    page = back.submit(page.form("/dispatch"), carrier=carrier, tracking=tracking)
    assert page.response.status_code == 200
    assert "2 to 60 letters" in page.text
    with app.app_context():
        assert db.session.execute(select(Shipment)).first() is None


def test_unpaid_order_cannot_be_dispatched(app, back):
    number = _order(app, OrderState.PENDING_PAYMENT)
    page = back.get(f"/admin/orders/{number}")
    assert "/dispatch" not in "".join(f.action for f in page.forms)


def test_capture_on_dispatch_takes_the_held_payment_at_the_sandbox(make_shop):
    shop = make_shop(RBS_TWO_PHASE=True, CAPTURE_ON_DISPATCH=True)
    order, attempt = held_on_the_sandbox(shop)
    make_staff(shop.app)
    office = Back(shop.app.test_client())
    office.sign_in()
    page = office.get(f"/admin/orders/{order.number}")
    page = office.submit(page.form("/dispatch"), carrier="An Post", tracking="CE987654321IE")
    assert "The held payment was captured." in page.text, page.text
    with shop.db() as session:
        assert session.get(PaymentAttempt, attempt.id).captured == 2500
