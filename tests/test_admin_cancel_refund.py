"""Cancelling an unpaid or held order by hand, and refunding an order by line, from the order
page, against the sandbox gateway over real HTTP."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storefront.admin.models import AuditEntry, Role
from storefront.catalogue.models import Product, StockMovement, StockReason
from storefront.orders.models import Order, OrderEvent, OrderState
from storefront.orders.refunds import RefundLine
from storefront.payments.models import AttemptState, PaymentAttempt, PaymentEvent
from tests.admin_steps import (
    EMAIL,
    Back,
    altapay_transaction,
    at_the_sandbox,
    held_on_the_sandbox,
    make_staff,
)
from tests.back_office import CLERK, make_account
from tests.back_office import PASSWORD as CLERK_PASSWORD
from tests.browser import Browser
from tests.journeys import (
    basket_to_gateway,
    latest_order,
    pay_altapay,
    pay_rbs,
    pay_without_coming_back,
    product,
    to_gateway,
)

scenario = pytest.mark.scenario
REASON = "customer phoned: ordered the wrong size"
RBS_REVERSED = 3


def office(shop, email: str = EMAIL, password: str | None = None) -> Back:
    back = Back(shop.app.test_client())
    if password is None:
        make_staff(shop.app, email)
        back.sign_in(email)
    else:
        back.sign_in(email, password)
    return back


def stock_of(shop, product_id: int) -> int:
    with shop.db() as session:
        return session.get(Product, product_id).stock


def unpaid_order(shop, price: int = 1800, quantity: int = 2) -> tuple[int, Order, PaymentAttempt]:
    """An order whose customer is on the sandbox's payment page and has not paid: a browser
    still there is kept on the order's ``customer`` attribute."""
    product_id, slug = product(shop, name="Sidamo", price=price, stock=5)
    customer = Browser()
    to_gateway(shop, customer, slug, quantity=quantity)
    order, [attempt] = latest_order(shop)
    assert order.state == OrderState.PENDING_PAYMENT
    order.customer = customer
    return product_id, order, attempt


def cancel(back: Back, number: str, reason: str = REASON):
    page = back.get(f"/admin/orders/{number}")
    return back.submit(page.form("/cancel"), **{"cancel-reason": reason})


def history(shop, order_id: int) -> list[tuple[str | None, str, str]]:
    with shop.db() as session:
        events = session.execute(
            select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id)
        ).scalars()
        return [(e.from_state, e.to_state, e.note) for e in events]


def audit_of(shop, number: str) -> list[tuple[str, str, str]]:
    with shop.db() as session:
        rows = session.execute(
            select(AuditEntry).where(AuditEntry.subject == number).order_by(AuditEntry.id)
        ).scalars()
        return [(r.actor, r.action, r.detail) for r in rows]


def movements(shop, product_id: int, reason: StockReason) -> list[int]:
    with shop.db() as session:
        rows = session.execute(
            select(StockMovement).where(
                StockMovement.product_id == product_id, StockMovement.reason == reason
            )
        ).scalars()
        return [m.delta for m in rows]


# Cancelling ------------------------------------------------------------------------------------
@scenario("admin cancels an unpaid order → stock back, payment ended on our side, audited")
def test_cancelling_an_unpaid_order_ends_its_payment_and_gives_the_stock_back(shop, sandbox):
    product_id, order, attempt = unpaid_order(shop)
    assert stock_of(shop, product_id) == 3
    back = office(shop)
    page = cancel(back, order.number)
    assert f"Order {order.number} is cancelled" in page.text, page.text
    assert "/cancel" not in "".join(f.action for f in page.forms)
    _, [ended] = latest_order(shop)
    assert latest_order(shop)[0].state == OrderState.CANCELLED
    assert ended.state == AttemptState.CANCELLED
    assert stock_of(shop, product_id) == 5
    assert movements(shop, product_id, StockReason.RELEASE) == [2]
    assert history(shop, order.id)[-1] == (
        OrderState.PENDING_PAYMENT,
        OrderState.CANCELLED,
        f"cancelled by {EMAIL}: {REASON}; stock released",
    )
    assert audit_of(shop, order.number) == [(EMAIL, "order.cancel", REASON)]
    with shop.db() as session:
        [decision] = session.execute(
            select(PaymentEvent).where(
                PaymentEvent.attempt_id == attempt.id,
                PaymentEvent.summary.contains("cancelled on our side"),
            )
        ).scalars()
        assert (decision.actor, decision.actor_name) == ("staff", EMAIL)


def test_cancelling_without_a_reason_is_refused(shop, sandbox):
    product_id, order, _ = unpaid_order(shop)
    back = office(shop)
    page = cancel(back, order.number, reason="   ")
    assert page.status == 422
    assert "Say why the order is cancelled." in page.text
    assert latest_order(shop)[0].state == OrderState.PENDING_PAYMENT
    assert stock_of(shop, product_id) == 3


@scenario("admin cancels a held order → the hold is reversed at the gateway, stock back")
def test_cancelling_a_held_order_voids_the_hold_at_the_sandbox(make_shop, sandbox):
    shop = make_shop(RBS_TWO_PHASE=True)
    order, attempt = held_on_the_sandbox(shop)
    with shop.db() as session:
        product_id = session.get(Order, order.id).lines[0].product_id
    assert stock_of(shop, product_id) == 4
    page = cancel(office(shop), order.number)
    assert f"Order {order.number} is cancelled" in page.text, page.text
    assert at_the_sandbox(sandbox, attempt.reference)["orderStatus"] == RBS_REVERSED
    cancelled, [voided] = latest_order(shop)
    assert (cancelled.state, voided.state) == (OrderState.CANCELLED, AttemptState.VOIDED)
    assert stock_of(shop, product_id) == 5
    assert history(shop, order.id)[-1][2] == f"cancelled by {EMAIL}: {REASON}"
    assert audit_of(shop, order.number) == [(EMAIL, "order.cancel", REASON)]


@scenario("staff without the payments permission cancel a held order → refused, no gateway call")
def test_cancelling_a_held_order_needs_the_payments_permission(make_shop, sandbox):
    shop = make_shop(RBS_TWO_PHASE=True)
    order, attempt = held_on_the_sandbox(shop)
    make_account(shop.app, CLERK, role=Role.STAFF)
    back = office(shop, CLERK, CLERK_PASSWORD)
    page = back.get(f"/admin/orders/{order.number}")
    assert "needs the payments permission" in page.text
    assert "/cancel" not in "".join(f.action for f in page.forms)
    # Posted all the same (an old page, a crafted form): refused before any gateway call.
    token = page.form("/notes").fields["note-csrf_token"]
    response = back.client.post(
        f"/admin/orders/{order.number}/cancel",
        data={"cancel-csrf_token": token, "cancel-reason": REASON},
        follow_redirects=True,
    )
    assert "may not void payments" in response.get_data(as_text=True)
    assert at_the_sandbox(sandbox, attempt.reference)["orderStatus"] == 1  # still approved
    held, [still] = latest_order(shop)
    assert (held.state, still.state) == (OrderState.AUTHORIZED, AttemptState.AUTHORIZED)
    assert audit_of(shop, order.number) == []


def test_a_second_click_on_cancel_changes_nothing(shop, sandbox):
    product_id, order, _ = unpaid_order(shop)
    back = office(shop)
    page = back.get(f"/admin/orders/{order.number}")
    form = page.form("/cancel")
    back.submit(form, **{"cancel-reason": REASON})
    back.page = page
    again = back.submit(form, **{"cancel-reason": REASON})
    assert "is cancelled: only an order that is waiting for payment" in again.text, again.text
    assert stock_of(shop, product_id) == 5
    assert movements(shop, product_id, StockReason.RELEASE) == [2]
    assert [e for e in history(shop, order.id) if e[1] == OrderState.CANCELLED][1:] == []
    assert len(audit_of(shop, order.number)) == 1


@scenario("the customer pays after the merchant cancelled → order on hold, the money recorded")
def test_a_payment_after_the_cancel_puts_the_order_on_hold(shop, sandbox):
    product_id, order, attempt = unpaid_order(shop, price=1800, quantity=1)
    cancel(office(shop), order.number)
    assert latest_order(shop)[0].state == OrderState.CANCELLED
    pay_rbs(order.customer)  # still on the sandbox's page, the customer pays
    held, [paid] = latest_order(shop)
    assert held.state == OrderState.ON_HOLD
    assert (paid.state, paid.captured) == (AttemptState.PAID, 1800)
    assert history(shop, order.id)[-1][:2] == (OrderState.CANCELLED, OrderState.ON_HOLD)
    assert "paid after the order was cancelled" in history(shop, order.id)[-1][2]
    assert stock_of(shop, product_id) == 5  # the stock went back once; a person decides


def test_a_customer_who_paid_a_moment_before_the_cancel_keeps_the_order(shop, sandbox):
    sandbox.settings(**{"delivery:rbs": "hold"})  # the gateway's callback has not come yet
    product_id, order, _ = unpaid_order(shop, price=1800, quantity=1)
    pay_without_coming_back(order.customer)
    page = cancel(office(shop), order.number)
    assert f"Order {order.number} is paid: only an order that is waiting" in page.text, page.text
    paid, [payment] = latest_order(shop)
    assert (paid.state, payment.state) == (OrderState.PAID, AttemptState.PAID)
    assert stock_of(shop, product_id) == 4
    assert audit_of(shop, order.number) == []


# Refunding by line -------------------------------------------------------------------------------
GATEWAYS = {
    "rbs": ({}, pay_rbs),
    "altapay": ({"GATEWAYS": "altapay", "ALTAPAY_CAPTURE": True}, pay_altapay),
}


def paid_two_lines(make_shop, gateway: str):
    """A paid order of 2 × 10.00 and 1 × 2.50; the shop, its two product ids, the order."""
    config, pay = GATEWAYS[gateway]
    shop = make_shop(**config)
    first, first_slug = product(shop, name="Kenya AA", price=1000, stock=5)
    second, second_slug = product(shop, name="Filter papers", price=250, stock=5)
    customer = Browser()
    basket_to_gateway(shop, customer, [(first_slug, 2), (second_slug, 1)], gateway=gateway)
    pay(customer)
    order, [attempt] = latest_order(shop)
    assert order.state == OrderState.PAID, order.state
    assert attempt.captured == order.total
    return shop, (first, second), order, attempt


def line_ids(shop, order: Order) -> tuple[int, int]:
    """The ids of the order's Kenya AA and Filter papers lines."""
    with shop.db() as session:
        ids = {line.name: line.id for line in session.get(Order, order.id).lines}
        return ids["Kenya AA"], ids["Filter papers"]


def refunded_at_gateway(sandbox, gateway: str, attempt: PaymentAttempt) -> int:
    if gateway == "rbs":
        return at_the_sandbox(sandbox, attempt.reference)["refundedAmount"]
    return altapay_transaction(sandbox, attempt.reference)["refunded"]


def refund_rows(shop, order: Order) -> list[tuple[int | None, int, bool, bool]]:
    with shop.db() as session:
        rows = session.execute(
            select(RefundLine).where(RefundLine.order_id == order.id).order_by(RefundLine.id)
        ).scalars()
        return [(r.order_line_id, r.quantity, r.restock, r.confirmed_at is not None) for r in rows]


def refund_form(back: Back, order: Order):
    page = back.get(f"/admin/orders/{order.number}")
    return page.form("/line-refunds")


@pytest.mark.parametrize("gateway", ["rbs", "altapay"])
@scenario("refund one of two lines with restock → that amount refunded, stock back, recorded")
def test_refunding_one_line_refunds_its_amount_and_restocks_it(make_shop, sandbox, gateway):
    shop, (first, second), order, attempt = paid_two_lines(make_shop, gateway)
    kenya, papers = line_ids(shop, order)
    assert (stock_of(shop, first), stock_of(shop, second)) == (3, 4)
    back = office(shop)
    form = refund_form(back, order)
    page = back.submit(
        form,
        **{
            f"lines-qty-{kenya}": 1,
            f"lines-restock-{kenya}": "y",
            "lines-reason": "one bag arrived torn",
        },
    )
    assert "Refund of €10.00 done." in page.text, page.text
    assert refunded_at_gateway(sandbox, gateway, attempt) == 1000
    assert (stock_of(shop, first), stock_of(shop, second)) == (4, 4)
    assert movements(shop, first, StockReason.REFUND_RESTOCK) == [1]
    assert refund_rows(shop, order) == [(kenya, 1, True, True)]
    refunded, [payment] = latest_order(shop)
    assert refunded.state == OrderState.PARTIALLY_REFUNDED
    assert (payment.state, payment.refunded) == (AttemptState.PARTIALLY_REFUNDED, 1000)
    assert "1 of 2" in page.text  # what is left of the line
    [(actor, action, detail)] = audit_of(shop, order.number)
    assert (actor, action) == (EMAIL, "order.refund_lines")
    assert "1 × Kenya AA (restocked)" in detail and "one bag arrived torn" in detail
    # The same page sent again (a double click) refunds nothing more.
    again = back.submit(form, **{f"lines-qty-{papers}": 1, "lines-reason": "one bag arrived torn"})
    assert "sent twice" in again.text, again.text
    assert refunded_at_gateway(sandbox, gateway, attempt) == 1000
    assert refund_rows(shop, order) == [(kenya, 1, True, True)]


@pytest.mark.parametrize("gateway", ["rbs", "altapay"])
def test_refunding_more_of_a_line_than_is_left_is_refused_without_a_gateway_call(
    make_shop, sandbox, gateway
):
    shop, (first, _), order, attempt = paid_two_lines(make_shop, gateway)
    kenya, _ = line_ids(shop, order)
    back = office(shop)
    with shop.db() as session:
        before = session.query(PaymentEvent).filter_by(attempt_id=attempt.id).count()
    page = back.submit(
        refund_form(back, order), **{f"lines-qty-{kenya}": 3, "lines-reason": "too many"}
    )
    assert "Kenya AA: only 2 of 2 can still be refunded, not 3." in page.text, page.text
    assert refunded_at_gateway(sandbox, gateway, attempt) == 0
    assert refund_rows(shop, order) == []
    with shop.db() as session:
        assert session.query(PaymentEvent).filter_by(attempt_id=attempt.id).count() == before
    assert stock_of(shop, first) == 3


@pytest.mark.parametrize(
    ("gateway", "op", "fault"),
    [("rbs", "refund", "error_code"), ("altapay", "refundCapturedReservation", "failed")],
)
def test_a_refund_the_gateway_refuses_leaves_stock_and_lines_alone(
    make_shop, sandbox, gateway, op, fault
):
    shop, (first, _), order, attempt = paid_two_lines(make_shop, gateway)
    kenya, _ = line_ids(shop, order)
    back = office(shop)
    sandbox.arm(gateway, op, fault, message="Refund declined by the issuer")
    page = back.submit(
        refund_form(back, order),
        **{f"lines-qty-{kenya}": 2, f"lines-restock-{kenya}": "y", "lines-reason": "returned"},
    )
    assert "Nothing was refunded. The gateway refused" in page.text, page.text
    assert refunded_at_gateway(sandbox, gateway, attempt) == 0
    assert refund_rows(shop, order) == []
    assert stock_of(shop, first) == 3
    assert movements(shop, first, StockReason.REFUND_RESTOCK) == []
    paid, [payment] = latest_order(shop)
    assert (paid.state, payment.refunded, payment.action) == (OrderState.PAID, 0, None)
    # The lines are still there to refund once the gateway agrees.
    page = back.submit(
        refund_form(back, order),
        **{f"lines-qty-{kenya}": 2, f"lines-restock-{kenya}": "y", "lines-reason": "returned"},
    )
    assert "Refund of €20.00 done." in page.text, page.text
    assert stock_of(shop, first) == 5


def test_refunding_by_line_needs_the_payments_permission(make_shop, sandbox):
    shop, (first, _), order, attempt = paid_two_lines(make_shop, "rbs")
    kenya, _ = line_ids(shop, order)
    make_account(shop.app, CLERK, role=Role.STAFF)
    back = office(shop, CLERK, CLERK_PASSWORD)
    page = back.get(f"/admin/orders/{order.number}")
    assert "Refunding needs the payments permission" in page.text
    assert "/line-refunds" not in "".join(f.action for f in page.forms)
    token = page.form("/notes").fields["note-csrf_token"]
    response = back.client.post(
        f"/admin/orders/{order.number}/line-refunds",
        data={
            "lines-csrf_token": token,
            "lines-seen": "0",
            f"lines-qty-{kenya}": "1",
            f"lines-restock-{kenya}": "y",
            "lines-reason": "returned",
        },
        follow_redirects=True,
    )
    assert "may not refund payments" in response.get_data(as_text=True)
    assert refunded_at_gateway(sandbox, "rbs", attempt) == 0
    assert refund_rows(shop, order) == []
    assert stock_of(shop, first) == 3
