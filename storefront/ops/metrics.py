"""Metrics in Prometheus's text format (prometheus-client), served at ``/metrics``.

Under gunicorn each worker is a process of its own: with ``PROMETHEUS_MULTIPROC_DIR`` set (the
Procfile sets it; ``gunicorn.conf.py`` clears stale files at start and marks dead workers)
counters and histograms are kept in files there and summed at scrape time. Without it (``make
run``, the tests) the process's own default registry is served.

What describes the database rather than this process — open payments by age, the outbox, the
reconciler's lag (its most overdue scheduled check), the alerts — is read from the database at
scrape time, by whichever process is scraped, so every process reports the same figures.

With ``STOREFRONT_METRICS_TOKEN`` set, ``/metrics`` wants ``Authorization: Bearer <token>``
(compared in constant time) and answers 401 without it. In production without a token it
answers 404: metrics are never open there. Elsewhere it is open unless a token is set.
"""

from __future__ import annotations

import hmac
import os

from flask import Blueprint, Response, abort, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from storefront.extensions import db
from storefront.timeutil import as_utc, now_utc

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if MULTIPROC_DIR:  # a worker process may start before the web's gunicorn made it
    os.makedirs(MULTIPROC_DIR, exist_ok=True)

SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
REQUESTS = Counter(
    "storefront_http_requests", "Requests answered, by endpoint, method and status.",
    ["endpoint", "method", "status"],
)  # fmt: skip
REQUEST_SECONDS = Histogram(
    "storefront_http_request_duration_seconds", "Time to answer a request, by endpoint.",
    ["endpoint"], buckets=SECONDS,
)  # fmt: skip
PAYMENTS_STARTED = Counter(
    "storefront_payments_started",
    "Hand-offs to a gateway, by gateway and outcome (redirected, failed_to_start, unknown).",
    ["gateway", "outcome"],
)
PAYMENTS_SETTLED = Counter(
    "storefront_payments_settled",
    "Payment attempts moved by a gateway's word, by gateway and the state they moved to.",
    ["gateway", "outcome"],
)
CALLBACKS = Counter(
    "storefront_callbacks_received",
    "Server-to-server calls from gateways, by gateway, kind and verdict (accepted, duplicate, "
    "bad_signature, mismatch, unconfirmed, unknown_payment).",
    ["gateway", "kind", "verdict"],
)
GATEWAY_SECONDS = Histogram(
    "storefront_gateway_request_duration_seconds",
    "Time of one HTTP exchange with a gateway, by gateway and operation.",
    ["gateway", "operation"], buckets=SECONDS,
)  # fmt: skip
GATEWAY_ERRORS = Counter(
    "storefront_gateway_errors",
    "Gateway exchanges without a usable answer (no answer, or HTTP 5xx), by operation.",
    ["gateway", "operation", "error"],
)
RECONCILER_RUNS = Counter("storefront_reconciler_runs", "Reconciler passes completed.")
RECONCILER_CHECKS = Counter(
    "storefront_reconciler_checks",
    "Status queries the reconciler made, by gateway and the state the attempt was left in.",
    ["gateway", "state"],
)
RECONCILER_LAST_RUN = Gauge(
    "storefront_reconciler_last_run_timestamp_seconds",
    "When the reconciler last finished a pass (in a process sharing this metrics directory).",
    multiprocess_mode="max",
)

# Open payments by how long ago they started, read at scrape time.
AGE_BANDS = ((300, "under_5m"), (900, "5m_15m"), (3600, "15m_1h"), (86400, "1h_1d"))
WATCHED_STATES = ("redirected", "pending", "unknown")

bp = Blueprint("metrics", __name__)


def endpoint_label() -> str:
    return request.endpoint or "unmatched"


def record_request(response) -> None:
    REQUESTS.labels(endpoint_label(), request.method, str(response.status_code)).inc()
    REQUEST_SECONDS.labels(endpoint_label()).observe(g.get("request_duration", 0.0))
    if request.endpoint == "payments.callback":
        args = request.view_args or {}
        CALLBACKS.labels(
            str(args.get("gateway", ""))[:20], str(args.get("kind", ""))[:20], verdict(response)
        ).inc()


def verdict(response) -> str:
    """What the shop made of a callback: from its answer and what settle() did with it."""
    if response.status_code == 400:
        return "bad_signature"  # malformed, or its checksum missing or wrong
    if response.status_code == 404:
        return "unknown_payment"
    moves = g.get("ops_settled") or []
    if any(target == "mismatch" for target, _ in moves):
        return "mismatch"
    if any(moved for _, moved in moves):
        return "accepted"
    if any(target is not None for target, _ in moves):
        return "duplicate"  # the gateway's word, already applied
    return "unconfirmed"  # the gateway's answer could not be had


@bp.get("/metrics")
def metrics():
    """The metrics, for Prometheus. :raise 401: a token is configured and was not given."""
    token = current_app.config["METRICS_TOKEN"]
    if not token and current_app.config["ENV"] == "production":
        abort(404)  # production never serves metrics to anyone who asks
    if token:
        given = request.headers.get("Authorization", "")
        expected = f"Bearer {token}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return Response("unauthorized\n", 401, {"WWW-Authenticate": 'Bearer realm="metrics"'})
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(DatabaseCollector())
    return Response(
        generate_latest(registry),
        200,
        {"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"},
    )


class _ThisProcess:
    def collect(self):
        yield from REGISTRY.collect()


class DatabaseCollector:
    """Figures read from the database when scraped: the same whichever process answers."""

    def collect(self):
        up = GaugeMetricFamily(
            "storefront_database_up", "Whether the scrape could read the database (1) or not (0)."
        )
        try:
            families = list(self._from_database())
        except SQLAlchemyError:
            db.session.rollback()
            families = []
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
        finally:
            db.session.remove()
        yield up
        yield from families

    def _from_database(self):
        from storefront.ops import alerting
        from storefront.orders.models import OutboxMessage
        from storefront.payments.models import OPEN_STATES, PaymentAttempt

        now = now_utc()
        open_by_age = GaugeMetricFamily(
            "storefront_payments_open",
            "Payment attempts not settled, by gateway, state and age since the hand-off.",
            labels=["gateway", "state", "age"],
        )
        oldest = GaugeMetricFamily(
            "storefront_payments_open_oldest_seconds",
            "Age of the oldest payment attempt in each open state.",
            labels=["state"],
        )
        rows = db.session.execute(
            select(PaymentAttempt.gateway, PaymentAttempt.state, PaymentAttempt.created_at).where(
                PaymentAttempt.state.in_(WATCHED_STATES)
            )
        ).all()
        counts: dict[tuple[str, str, str], int] = {}
        ages: dict[str, float] = dict.fromkeys(WATCHED_STATES, 0.0)
        for gateway, state, created_at in rows:
            age = (now - as_utc(created_at)).total_seconds()
            band = next((name for limit, name in AGE_BANDS if age < limit), "over_1d")
            counts[(gateway, state, band)] = counts.get((gateway, state, band), 0) + 1
            ages[state] = max(ages[state], age)
        for labels, count in sorted(counts.items()):
            open_by_age.add_metric(list(labels), count)
        for state, age in ages.items():
            oldest.add_metric([state], age)
        yield open_by_age
        yield oldest

        depth, first = db.session.execute(
            select(func.count(OutboxMessage.id), func.min(OutboxMessage.created_at)).where(
                OutboxMessage.sent_at.is_(None)
            )
        ).one()
        yield GaugeMetricFamily("storefront_outbox_depth", "Mails not sent yet.", value=depth)
        yield GaugeMetricFamily(
            "storefront_outbox_oldest_seconds",
            "Age of the oldest unsent mail (0 when none).",
            value=(now - as_utc(first)).total_seconds() if first else 0.0,
        )

        overdue = db.session.execute(
            select(func.min(PaymentAttempt.next_check_at)).where(
                PaymentAttempt.state.in_(OPEN_STATES), PaymentAttempt.next_check_at < now
            )
        ).scalar()
        yield GaugeMetricFamily(
            "storefront_reconciler_lag_seconds",
            "How long the most overdue scheduled check has waited (0: none overdue).",
            value=(now - as_utc(overdue)).total_seconds() if overdue else 0.0,
        )

        alert = GaugeMetricFamily(
            "storefront_alert",
            "Conditions that need a person, by alert: how many things are in each (0 = fine).",
            labels=["alert"],
        )
        for name, count in alerting.counts().items():
            alert.add_metric([name], count)
        yield alert
