"""Alerts: each condition that needs a person fires from the rows that cause it, shows on the
admin's reconciliation page and moves its gauge; a healthy shop has none."""

from __future__ import annotations

from datetime import timedelta

from storefront import ops
from storefront.extensions import db
from storefront.orders.models import OrderState, OutboxMessage
from storefront.payments.models import Actor, PaymentEvent
from storefront.timeutil import now_utc
from tests.admin_steps import Back, make_staff
from tests.ops_steps import sample
from tests.ops_support import make_attempt, make_order


def evidence(attempt, kind: str, n: int = 1) -> None:
    for _ in range(n):
        db.session.add(
            PaymentEvent(attempt_id=attempt.id, kind=kind, summary=kind, actor=Actor.GATEWAY)
        )
    db.session.commit()


def test_a_healthy_shop_has_no_alert(app, client):
    with app.app_context():
        evidence(make_attempt(make_order(OrderState.PAID), "paid"), "response")
        make_attempt(make_order(), "unknown", age=60)  # unknown, but not for long yet
        assert ops.alerts() == []
    scrape = client.get("/metrics").text
    assert sample(scrape, "storefront_alert", alert="paid_without_confirmation") == 0


def test_each_alert_fires_from_what_causes_it(app, client):
    app.config["ALERT_CALLBACKS_PER_ORDER"] = 3
    with app.app_context():
        make_attempt(make_order(OrderState.PAID), "paid")  # paid, and no gateway word on record
        evidence(make_attempt(make_order(OrderState.PAID), "paid"), "callback")  # confirmed
        make_attempt(make_order(OrderState.ON_HOLD), "mismatch")
        evidence(make_attempt(make_order(), "pending"), "callback", n=4)
        make_attempt(make_order(), "unknown", age=16 * 60)
        order = make_order(OrderState.PAID)
        db.session.add(
            OutboxMessage(
                kind="order_confirmation",
                order_id=order.id,
                created_at=now_utc() - timedelta(minutes=6),
            )
        )
        db.session.commit()
        firing = {alert.name: alert.count for alert in ops.alerts()}
    assert firing == {
        "paid_without_confirmation": 1,
        "orders_on_hold": 1,
        "callback_storm": 1,
        "unknown_payments_old": 1,
        "outbox_stuck": 1,
    }
    scrape = client.get("/metrics").text
    for name in firing:
        assert sample(scrape, "storefront_alert", alert=name) == 1

    make_staff(app)
    office = Back(client)
    office.sign_in()
    page = office.get("/admin/reconciliation")
    assert "Needs a person" in page
    for name in firing:
        assert f'id="alert-{name}"' in page.text
    assert "Payments marked paid without the gateway&#39;s word: 1" in page.text
