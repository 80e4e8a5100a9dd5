"""Structured logs: one JSON line per request and per gateway exchange, each with the request
id, the payment lines with the order number and attempt reference, and no personal data or
tokens."""

from __future__ import annotations

import io
import json
import logging
from contextlib import contextmanager

from storefront.ops.logs import JsonFormatter
from tests.browser import Browser
from tests.journeys import CUSTOMER, latest_order, pay_rbs, product, to_gateway


@contextmanager
def captured_json_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("storefront")
    logger.addHandler(handler)
    lines: list[dict] = []
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines())


def test_a_payment_leaves_json_lines_with_request_id_order_and_attempt(make_shop, sandbox):
    shop = make_shop(LOG_FORMAT="json")
    _, slug = product(shop)
    # The return settles the payment: a callback arriving first would leave it nothing to ask.
    sandbox.settings(**{"delivery:rbs": "hold"})
    browser = Browser()
    with captured_json_lines() as lines:
        to_gateway(shop, browser, slug)
        page = pay_rbs(browser)
    assert "Thank you" in page
    order, [attempt] = latest_order(shop)
    requests_ = [line for line in lines if line["msg"] == "request"]
    exchanges = [line for line in lines if line["msg"] == "gateway"]
    assert requests_ and exchanges
    for line in requests_:
        assert {"method", "path", "status", "duration_ms", "request_id"} <= set(line)
        assert "?" not in line["path"]
    # The return, on a path carrying the attempt's token: the token is not in the log.
    [back] = [line for line in requests_ if line["endpoint"] == "payments.browser_return"]
    assert back["path"] == "/pay/rbs/return/[token]"
    assert (back["order"], back["attempt"]) == (order.number, attempt.reference)
    receipt = [line for line in requests_ if line["endpoint"] == "orders.show"]
    assert receipt and all(line["path"] == "/order/[token]" for line in receipt)
    # The status query made during the return: gateway, operation, status, the same request.
    [status] = [e for e in exchanges if e.get("request_id") == back["request_id"]]
    assert (status["gateway"], status["operation"]) == ("rbs", "getOrderStatusExtended")
    assert status["status"] == 200 and status["order"] == order.number
    assert status["attempt"] == attempt.reference and "duration_ms" in status
    [register] = [e for e in exchanges if e["operation"] == "register"]
    assert register["attempt"] == attempt.reference
    text = json.dumps(lines)
    for secret in (attempt.token, order.receipt_token, CUSTOMER["email"], CUSTOMER["name"]):
        assert secret not in text
    assert "sandbox-password" not in text


def test_the_request_id_is_taken_from_a_trusted_proxy_only(app):
    app.config["PROXY_COUNT"] = 0
    response = app.test_client().get("/healthz", headers={"X-Request-ID": "from-outside-1"})
    assert response.headers["X-Request-ID"] not in ("", "from-outside-1")


def test_the_request_id_of_a_trusted_proxy_is_kept(tmp_path):
    from storefront import create_app

    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
            "SANDBOX": False,
            "PROXY_COUNT": 1,
            "INSTANCE_PATH": str(tmp_path),
        }
    )
    client = app.test_client()
    with captured_json_lines() as lines:
        response = client.get("/healthz", headers={"X-Request-ID": "proxy-id-42"})
        bad = client.get("/healthz", headers={"X-Request-ID": "no spaces <allowed>"})
    assert response.headers["X-Request-ID"] == "proxy-id-42"
    assert bad.headers["X-Request-ID"] != "no spaces <allowed>"
    assert lines[0]["request_id"] == "proxy-id-42" and lines[0]["path"] == "/healthz"
