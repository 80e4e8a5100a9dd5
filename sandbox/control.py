"""The control API tests use to drive the sandbox: faults, the clock, deliveries, state.

``POST /__control/faults``  {"gateway": "rbs", "op": "getOrderStatusExtended",
                            "fault": "http_503", "count": 2, "params": {}}
``DELETE /__control/faults``                 disarm everything
``POST /__control/clock``   {"advance": 1200}  move the sandbox's clock forward (seconds)
``POST /__control/settings`` {"delivery:rbs": "hold"}  change run-time settings
``POST /__control/deliver`` {"id": "…"} or {"gateway": "rbs"}  send held deliveries now
``GET  /__state``           every document, armed fault and delivery, as JSON
``POST /__reset``           forget everything

Every one of these (and ``/rbs/__control/callback``) answers only a caller that sends the
configured ``SANDBOX_CONTROL_TOKEN`` in the ``X-Sandbox-Control`` header: the state holds every
payment's return URL, and the controls can make an unpaid order read as paid. With no token
configured the control API does not exist (404); a missing or wrong token is refused (403). The
client's address is never trusted: behind a proxy every caller is the loopback.
"""

from __future__ import annotations

import hmac
import math

from flask import Blueprint, abort, current_app, jsonify, request

from sandbox import delivery
from sandbox.faults import store, this_app

bp = Blueprint("control", __name__)

HEADER = "X-Sandbox-Control"


def require_token() -> None:
    """Refuse the request unless it carries the control token (404 when none is configured)."""
    expected = str(current_app.config.get("SANDBOX_CONTROL_TOKEN") or "")
    if not expected:
        abort(404)
    given = request.headers.get(HEADER, "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        abort(403, f"the control API needs the control token in the {HEADER} header")


bp.before_request(require_token)


def _json() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, "a JSON object is expected")
    return body


@bp.post("/__control/faults")
def arm_fault():
    body = _json()
    try:
        store().arm(
            str(body["gateway"]),
            str(body.get("op", "*")),
            str(body["fault"]),
            int(body.get("count", 1)),
            dict(body.get("params") or {}),
        )
    except (KeyError, TypeError, ValueError):
        abort(400, "gateway and fault are required; count is a number")
    return jsonify(faults=store().faults()), 201


@bp.delete("/__control/faults")
def disarm_faults():
    with store().transaction() as conn:
        conn.execute("DELETE FROM fault")
    return jsonify(faults=[])


@bp.post("/__control/clock")
def move_clock():
    try:
        seconds = float(_json()["advance"])
    except (KeyError, TypeError, ValueError):
        abort(400, "advance (seconds) is required")
    if not math.isfinite(seconds):
        abort(400, "advance must be a finite number of seconds")
    now = store().advance(seconds)
    # Let each protocol notice what the new time means (expiries, reversals).
    for sweep in current_app.extensions.get("sandbox_sweeps", []):
        sweep(this_app())
    return jsonify(now=now)


@bp.post("/__control/settings")
def change_settings():
    for name, value in _json().items():
        store().set_setting(name, value)
    return jsonify(ok=True)


@bp.post("/__control/deliver")
def deliver_held():
    body = _json()
    jobs = store().all("delivery")
    chosen = [
        j
        for j in jobs
        if j["state"] in ("held", "dropped")
        and (j["id"] == body.get("id") or j["gateway"] == body.get("gateway"))
    ]
    try:
        copies = int(body.get("copies", 1))
    except (TypeError, ValueError):
        abort(400, "copies is a number")
    for job in chosen:
        store().update("delivery", job["id"], lambda d: d.update(state="queued"))
        for _ in range(copies):
            delivery.start(this_app(), job["id"])
    return jsonify(sent=[j["id"] for j in chosen])


@bp.get("/__state")
def state():
    s = store()
    with s._lock:
        kinds = [r[0] for r in s._conn.execute("SELECT DISTINCT kind FROM doc").fetchall()]
    return jsonify(now=s.now(), faults=s.faults(), **{kind: s.all(kind) for kind in kinds})


@bp.post("/__reset")
def reset():
    store().reset()
    return jsonify(ok=True)
