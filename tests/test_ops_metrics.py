"""/metrics: the counters move as payments happen, exactly once per payment however many server
processes saw it; a forged callback moves the bad-signature count; production keeps them shut."""

from __future__ import annotations

import os
import secrets
from types import SimpleNamespace

import pytest
import requests

from storefront import create_app
from storefront.extensions import db
from tests.browser import Browser
from tests.deployment import SECRET, Deployment, create_database, drop_database
from tests.journeys import to_gateway
from tests.ops_steps import sample
from tests.ops_support import make_attempt, make_order
from tests.production import production

SHOP = "https://shop.example"


def total(texts: list[str], name: str, **labels) -> float:
    return sum(sample(text, name, **labels) for text in texts)


def test_a_forged_callback_moves_the_bad_signature_count(app, client):
    with app.app_context():
        attempt = make_attempt(make_order(), "redirected", gateway_id="md-1")
        reference = attempt.reference
    name, labels = (
        "storefront_callbacks_received_total",
        {
            "gateway": "rbs",
            "kind": "notification",
            "verdict": "bad_signature",
        },
    )
    before = sample(client.get("/metrics").text, name, **labels)
    forged = {"mdOrder": "md-1", "orderNumber": reference, "operation": "deposited", "status": "1"}
    answer = client.post("/pay/rbs/callback/notification", data={**forged, "checksum": "00"})
    assert answer.status_code == 400
    scrape = client.get("/metrics").text
    assert sample(scrape, name, **labels) == before + 1
    assert sample(scrape, "storefront_http_requests_total", endpoint="payments.callback") >= 1
    assert sample(scrape, "storefront_payments_open", gateway="rbs", state="redirected") == 1
    assert sample(scrape, "storefront_database_up") == 1


def test_production_metrics_want_the_token(postgres_database):
    url = postgres_database
    shut = create_app(production(DATABASE_URL=url)).test_client()
    # The shop answers to its own host only (STOREFRONT_PUBLIC_URL).
    assert shut.get("/metrics", base_url=SHOP).status_code == 404  # no token: never open
    token = secrets.token_urlsafe(32)
    app = create_app(production(DATABASE_URL=url, METRICS_TOKEN=token))
    with app.app_context():
        db.create_all()
        db.engine.dispose()
    client = app.test_client()
    assert client.get("/metrics", base_url=SHOP).status_code == 401
    assert (
        client.get("/metrics", base_url=SHOP, headers={"Authorization": "Bearer wrong"}).status_code
        == 401
    )
    assert (
        client.get("/metrics", base_url=SHOP, headers={"Authorization": token}).status_code == 401
    )
    scrape = client.get("/metrics", base_url=SHOP, headers={"Authorization": f"Bearer {token}"})
    assert scrape.status_code == 200 and "storefront_outbox_depth" in scrape.text


@pytest.fixture(scope="module")
def deployment(sandbox_server, tmp_path_factory):
    """Two gunicorn processes (each with its workers' multiprocess metrics) on PostgreSQL."""
    admin = os.environ.get("STOREFRONT_TEST_POSTGRES_URL")
    if not admin:
        pytest.fail("STOREFRONT_TEST_POSTGRES_URL is not set: run `make test`")
    folder = tmp_path_factory.mktemp("metrics")
    url = create_database(admin)
    app = create_app(
        {
            "SECRET_KEY": SECRET,
            "DATABASE_URL": url,
            "SANDBOX": False,
            "INSTANCE_PATH": str(folder),
            "RATELIMIT_ENABLED": False,
        }
    )
    with app.app_context():
        db.create_all()
    running = Deployment(url, sandbox_server.url, folder).start()
    yield SimpleNamespace(app=app, url=running.urls[0], urls=running.urls, processes=running)
    running.stop()
    with app.app_context():
        db.engine.dispose()
    drop_database(admin, url)


def scrape_all(deployment) -> list[str]:
    """Every process's /metrics; each gunicorn sums its own workers (asked a few times, so
    that whichever worker answers, the sum is over all of them)."""
    texts = [requests.get(url + "/metrics", timeout=10).text for url in deployment.urls]
    again = [requests.get(url + "/metrics", timeout=10).text for url in deployment.urls]
    assert [sample(t, "storefront_database_up") for t in texts + again] == [1.0] * 4
    # Summed from the workers' files (multiprocess mode): the single-process registry's own
    # process figures are absent.
    assert all("python_gc_objects_collected_total" not in t for t in texts + again)
    return texts


def test_one_payment_on_two_processes_is_counted_once(deployment, sandbox):
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlsplit

    from storefront.orders.models import Order
    from tests.deployment import latest_attempt, new_product
    from tests.journeys import pay_without_coming_back, wait_for

    sandbox.settings(**{"delivery:rbs": "hold"})  # the callback comes when the test says
    settled = ("storefront_payments_settled_total", {"gateway": "rbs", "outcome": "paid"})
    started = ("storefront_payments_started_total", {"gateway": "rbs", "outcome": "redirected"})
    duplicate = (
        "storefront_callbacks_received_total",
        {"gateway": "rbs", "kind": "notification", "verdict": "duplicate"},
    )
    before = scrape_all(deployment)

    _, slug = new_product(deployment)
    browser = Browser()
    to_gateway(deployment, browser, slug)
    return_url = pay_without_coming_back(browser)
    path = urlsplit(return_url)
    # The browser's return arrives at both processes at once, four times each.
    urls = [f"{base}{path.path}?{path.query}" for base in deployment.urls] * 4
    with ThreadPoolExecutor(len(urls)) as pool:
        answers = list(pool.map(lambda u: requests.get(u, timeout=30, allow_redirects=False), urls))
    assert {a.status_code for a in answers} == {303}
    assert sandbox.deliver(gateway="rbs")  # then the gateway's own callback, late
    attempt = latest_attempt(deployment)
    with deployment.app.app_context():
        assert db.session.get(Order, attempt.order_id).state == "paid"
        db.session.remove()

    def callback_counted():
        texts = scrape_all(deployment)
        return (
            texts
            if total(texts, duplicate[0], **duplicate[1])
            > total(before, duplicate[0], **duplicate[1])
            else None
        )

    after = wait_for(callback_counted)
    assert after, "the held callback was never counted"
    assert total(after, settled[0], **settled[1]) == total(before, settled[0], **settled[1]) + 1
    assert total(after, started[0], **started[1]) == total(before, started[0], **started[1]) + 1
    assert total(after, duplicate[0], **duplicate[1]) == (
        total(before, duplicate[0], **duplicate[1]) + 1
    )
    status = {"gateway": "rbs", "operation": "getOrderStatusExtended"}
    name = "storefront_gateway_request_duration_seconds_count"
    assert total(after, name, **status) >= total(before, name, **status) + 2
