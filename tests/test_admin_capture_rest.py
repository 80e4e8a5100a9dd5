"""After a partial capture: the rest still held on the card, captured later or released, from
the order page, against the sandbox gateway over real HTTP."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from storefront.admin.models import Role
from storefront.gateways.base import EventKind
from storefront.orders.models import Order, OrderEvent, OrderState
from storefront.payments.models import AttemptState, PaymentAttempt, PaymentEvent
from tests.admin_steps import (
    Back,
    altapay_transaction,
    at_the_sandbox,
    held_on_altapay,
    held_on_the_sandbox,
    make_staff,
)
from tests.back_office import CLERK, PASSWORD, make_account

scenario = pytest.mark.scenario
RBS_DEPOSITED = 2


def office(shop, email: str | None = None) -> Back:
    back = Back(shop.app.test_client())
    if email is None:
        make_staff(shop.app)
        back.sign_in()
    else:
        back.sign_in(email, PASSWORD)
    return back


def amount_field(form) -> str:
    return next(k for k in form.fields if k.endswith("-amount"))


def capture(back: Back, number: str, amount: str):
    page = back.get(f"/admin/orders/{number}")
    form = page.form("/capture")
    return back.submit(form, **{amount_field(form): amount})


def held_shown(page) -> str:
    """The payment's "Held on the card" amount as the page shows it."""
    found = re.search(r"Held on the card</dt><dd><span class=\"price\">([^<]+)</span>", page.text)
    assert found, page.text
    return found.group(1)


def actions(page) -> list[str]:
    return [form.action for form in page.forms]


def attempt_now(shop, attempt_id: int) -> tuple[str, int, int, int]:
    with shop.db() as session:
        attempt = session.get(PaymentAttempt, attempt_id)
        return attempt.state, attempt.authorized, attempt.captured, attempt.released


def requests_made(shop, attempt_id: int) -> int:
    with shop.db() as session:
        return len(
            session.execute(
                select(PaymentEvent).where(
                    PaymentEvent.attempt_id == attempt_id, PaymentEvent.kind == EventKind.REQUEST
                )
            )
            .scalars()
            .all()
        )


def partly_captured_on_altapay(make_shop) -> tuple[object, Back, Order, PaymentAttempt]:
    shop = make_shop(GATEWAYS="rbs,altapay")
    order, attempt = held_on_altapay(shop, price=1250)
    back = office(shop)
    page = back.get(f"/admin/orders/{order.number}")
    assert "the rest stays held, to be captured later or released" in page
    page = capture(back, order.number, "7.50")
    assert "Capture of €7.50 done. The payment is now paid." in page, page.text
    return shop, back, order, attempt


@scenario("AltaPay: capture part, capture more of the rest, release what is left")
def test_altapay_rest_is_shown_captured_more_and_released(make_shop, sandbox):
    shop, back, order, attempt = partly_captured_on_altapay(make_shop)
    page = back.get(f"/admin/orders/{order.number}")
    assert held_shown(page) == "€5.00"
    assert "€5.00 is still held on the card after the capture of €7.50" in page

    form = page.form("/capture-more")
    page = back.submit(form, **{amount_field(form): "2.00"})
    assert "Capture of €2.00 more done. The payment is now paid." in page, page.text
    assert altapay_transaction(sandbox, attempt.reference)["captured"] == 950
    assert attempt_now(shop, attempt.id) == (AttemptState.PAID, 1250, 950, 0)
    assert held_shown(page) == "€3.00"

    page = back.submit(page.form("/release-rest"), button="Release the rest")
    assert "The rest of the hold (€3.00) is released. The payment is now paid." in page, page.text
    gateway_side = altapay_transaction(sandbox, attempt.reference)
    assert (gateway_side["captured"], gateway_side["released"]) == (950, 300)
    assert attempt_now(shop, attempt.id) == (AttemptState.PAID, 1250, 950, 300)
    assert held_shown(page) == "€0.00"
    assert "€3.00 of the hold released uncaptured" in page
    assert not [a for a in actions(page) if "/capture" in a or "/release-rest" in a]
    with shop.db() as session:
        assert session.get(Order, order.id).state == OrderState.PAID
        notes = session.execute(
            select(OrderEvent.note).where(OrderEvent.order_id == order.id)
        ).scalars()
        assert f"payment {attempt.reference}: the rest of the hold released" in " ".join(notes)


def test_altapay_a_second_click_on_capture_more_captures_once(make_shop, sandbox):
    shop, back, order, attempt = partly_captured_on_altapay(make_shop)
    page = back.get(f"/admin/orders/{order.number}")
    form = page.form("/capture-more")
    back.submit(form, **{amount_field(form): "2.00"})
    back.page = page  # the same page, clicked again
    again = back.submit(form, **{amount_field(form): "2.00"})
    assert "nothing more was captured" in again, again.text
    assert altapay_transaction(sandbox, attempt.reference)["captured"] == 950
    assert attempt_now(shop, attempt.id)[2] == 950


def test_altapay_capturing_more_than_is_held_is_refused_without_a_gateway_call(make_shop, sandbox):
    shop, back, order, attempt = partly_captured_on_altapay(make_shop)
    calls = requests_made(shop, attempt.id)
    page = back.get(f"/admin/orders/{order.number}")
    form = page.form("/capture-more")
    page = back.submit(form, **{amount_field(form): "5.01"})
    assert page.status == 422
    assert (
        "Capturing more than is still held is impossible: at most €5.00 can still be captured."
        in page
    )
    assert requests_made(shop, attempt.id) == calls
    assert altapay_transaction(sandbox, attempt.reference)["captured"] == 750


@scenario("staff without the payments permission → no capture more or release, refused if posted")
def test_capture_more_and_release_need_the_payments_permission(make_shop, sandbox):
    shop, _, order, attempt = partly_captured_on_altapay(make_shop)
    make_account(shop.app, CLERK, role=Role.STAFF)
    clerk = office(shop, CLERK)
    page = clerk.get(f"/admin/orders/{order.number}")
    assert held_shown(page) == "€5.00"
    assert "need the payments permission" in page
    assert not [a for a in actions(page) if "/capture-more" in a or "/release-rest" in a]
    token = page.form("/notes").fields["note-csrf_token"]
    calls = requests_made(shop, attempt.id)
    for path, data in (
        ("capture-more", {f"capture-more-{attempt.id}-amount": "1.00"}),
        ("release-rest", {}),
    ):
        response = clerk.client.post(
            f"/admin/orders/{order.number}/payments/{attempt.id}/{path}",
            data={"csrf_token": token, **data},
            follow_redirects=True,
        )
        assert "may not capture, void or refund payments" in response.get_data(as_text=True)
    assert requests_made(shop, attempt.id) == calls
    gateway_side = altapay_transaction(sandbox, attempt.reference)
    assert (gateway_side["captured"], gateway_side.get("released", 0)) == (750, 0)


@scenario("BPC/RBS: a partial deposit leaves nothing held, and the page says why")
def test_rbs_page_explains_that_the_rest_is_not_held(make_shop, sandbox):
    shop = make_shop(RBS_TWO_PHASE=True)
    order, attempt = held_on_the_sandbox(shop, price=1250)
    back = office(shop)
    page = back.get(f"/admin/orders/{order.number}")
    assert "the rest is then given back to the card and cannot be captured later" in page
    page = capture(back, order.number, "7.50")
    assert "Capture of €7.50 done. The payment is now paid." in page, page.text
    gateway_side = at_the_sandbox(sandbox, attempt.reference)
    assert (gateway_side["orderStatus"], gateway_side["depositedAmount"]) == (RBS_DEPOSITED, 750)
    assert held_shown(page) == "€0.00"
    assert "€5.00 of the authorised amount was not captured and is not held" in page
    assert "BPC/RBS takes one deposit per payment" in page
    assert not [a for a in actions(page) if "/capture" in a or "/release-rest" in a]
    # Posted all the same: refused before any gateway call.
    calls = requests_made(shop, attempt.id)
    token = page.form("/notes").fields["note-csrf_token"]
    response = back.client.post(
        f"/admin/orders/{order.number}/payments/{attempt.id}/capture-more",
        data={"csrf_token": token, f"capture-more-{attempt.id}-amount": "1.00"},
        follow_redirects=True,
    )
    assert "Nothing more can be captured on this payment" in response.get_data(as_text=True)
    response = back.client.post(
        f"/admin/orders/{order.number}/payments/{attempt.id}/release-rest",
        data={"csrf_token": token},
        follow_redirects=True,
    )
    assert "nothing to release" in response.get_data(as_text=True)
    assert requests_made(shop, attempt.id) == calls
    assert attempt_now(shop, attempt.id) == (AttemptState.PAID, 1250, 750, 0)
