"""``/healthz`` and ``/readyz``."""

from __future__ import annotations

from flask import Blueprint, jsonify

from storefront.ops import health

bp = Blueprint("ops", __name__)
NO_STORE = {"Cache-Control": "no-store"}


@bp.get("/healthz")
def healthz():
    """The process is alive: no database, no gateway."""
    return "ok\n", 200, {"Content-Type": "text/plain; charset=utf-8", **NO_STORE}


@bp.get("/readyz")
def readyz():
    """Ready to serve customers: 200 with every check, or 503 naming the one that failed."""
    results = health.checks()
    ready = health.ready(results)
    body = {"ready": ready, "checks": [check.as_dict() for check in results]}
    return jsonify(body), 200 if ready else 503, NO_STORE
