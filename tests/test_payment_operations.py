"""Payment operations carried to the end against the sandbox gateway, whatever the reading of
the protocol the gateway follows: the operator's capture, refund and cancel."""

from __future__ import annotations

import pytest

from storefront.extensions import db
from storefront.payments import backoffice
from storefront.payments.models import AttemptState, PaymentAttempt
from tests.browser import Browser
from tests.journeys import latest_order, pay_rbs, product, to_gateway

scenario = pytest.mark.scenario


def held(shop, price: int) -> int:
    _, slug = product(shop, price=price, stock=5)
    browser = Browser()
    to_gateway(shop, browser, slug)
    pay_rbs(browser)
    _, [attempt] = latest_order(shop)
    assert attempt.state == AttemptState.AUTHORIZED
    return attempt.id


def act(shop, attempt_id: int, action, *args):
    with shop.app.test_request_context():
        attempt = db.session.get(PaymentAttempt, attempt_id)
        action(attempt, *args, "operator@example.com")
        return attempt.state, attempt.captured, attempt.refunded


@pytest.mark.parametrize("guard", ["deposited", "net"])
@scenario(
    "BPC/RBS: capture 7.50 of 12.50, refund 2.50, then 5.00 → both refunds done, whichever "
    "amount the gateway holds expectedDepositedAmount against",
    gateway="rbs",
)
def test_partial_refunds_after_a_partial_capture_on_either_reading(make_shop, sandbox, guard):
    sandbox.settings(**{"rbs:refund_guard": guard})
    shop = make_shop(RBS_TWO_PHASE=True)
    attempt_id = held(shop, 1250)
    assert act(shop, attempt_id, backoffice.capture, 750) == (AttemptState.PAID, 750, 0)
    state, _, refunded = act(shop, attempt_id, backoffice.refund, 250)
    assert (state, refunded) == (AttemptState.PARTIALLY_REFUNDED, 250)
    state, _, refunded = act(shop, attempt_id, backoffice.refund, 500)
    assert (state, refunded) == (AttemptState.REFUNDED, 750)
    [order] = [o for o in sandbox.state()["rbs_order"] if o["refundedAmount"]]
    assert order["refundedAmount"] == 750
    assert len({r["externalRefundId"] for r in order["refunds"]}) == 2


def test_a_refused_refund_reads_the_gateways_amounts_again(make_shop, sandbox):
    shop = make_shop(RBS_TWO_PHASE=True)
    attempt_id = held(shop, 1250)
    act(shop, attempt_id, backoffice.capture, 1250)
    # Refunded in the gateway's own back office, unknown to the shop.
    with shop.app.app_context():
        attempt = db.session.get(PaymentAttempt, attempt_id)
        gateway_id = attempt.gateway_id
    import requests

    answer = requests.post(
        f"{sandbox.url}/rbs/payment/rest/refund.do",
        data={
            "userName": "sandbox-merchant",
            "password": "sandbox-password",
            "orderId": gateway_id,
            "amount": "1250",
        },
        timeout=10,
    ).json()
    assert answer["errorCode"] == "0"
    with pytest.raises(backoffice.ActionRefused):
        act(shop, attempt_id, backoffice.refund, 500)
    with shop.db() as session:
        attempt = session.get(PaymentAttempt, attempt_id)
        assert (attempt.state, attempt.refunded) == (AttemptState.REFUNDED, 1250)
