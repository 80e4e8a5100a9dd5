"""The hooks the payment code calls, one line each, so that logs and metrics follow a payment
without the payment code knowing about either:

- ``observe.attempt(attempt)`` — settle() takes up an attempt: later lines name it;
- ``observe.instrument(session, gateway)`` — every HTTP exchange of an adapter's session is
  timed, logged and counted (HttpGateway.__init__);
- ``observe.started(attempt, state)`` — a hand-off ended: redirected, failed, or unknown;
- ``observe.settled(attempt, target, moved)`` — settle() applied a gateway's word: counted
  once per real move (the guarded update moves an attempt once, whichever process asks), and
  kept for the request so that a callback's verdict can be counted when it is answered.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import g, has_request_context
from requests.adapters import HTTPAdapter

from storefront.ops import logs, metrics

# Fields of an outgoing message that name the attempt, when nothing was bound (a registration
# names our reference: RBS orderNumber, AltaPay shop_orderid, InterPay REQUESTID).
_REFERENCE_FIELDS = ("orderNumber", "shop_orderid", "REQUESTID")


def attempt(attempt: Any) -> None:
    """Name ``attempt`` (and its order) on every log line from here to the end of the request."""
    logs.attempt_context.set({"order": attempt.order.number, "attempt": attempt.reference})


def started(attempt: Any, state: str) -> None:
    metrics.PAYMENTS_STARTED.labels(attempt.gateway, str(state)).inc()


def settled(attempt: Any, target: str | None, moved: bool) -> None:
    if moved and target is not None and target != "pending":
        metrics.PAYMENTS_SETTLED.labels(attempt.gateway, str(target)).inc()
    if has_request_context():
        g.ops_settled = [
            *g.get("ops_settled", []),
            (None if target is None else str(target), moved),
        ]


def instrument(session, gateway: str) -> None:
    """Send every request of ``session`` through :class:`TimedAdapter` for ``gateway``."""
    adapter = TimedAdapter(gateway)
    session.mount("http://", adapter)
    session.mount("https://", adapter)


class TimedAdapter(HTTPAdapter):
    """A requests transport that logs and counts each exchange: gateway, operation, HTTP status
    or error, duration, and the attempt where known. Nothing of the body is kept but the
    operation's name and our own reference."""

    def __init__(self, gateway: str):
        super().__init__()
        self.gateway = gateway

    def send(self, request, *args, **kwargs):
        operation, reference = describe(request)
        fields: dict[str, Any] = {"gateway": self.gateway, "operation": operation}
        if reference and not (logs.attempt_context.get() or {}).get("attempt"):
            fields["attempt"] = reference
        started = time.perf_counter()
        try:
            response = super().send(request, *args, **kwargs)
        except Exception as exc:
            fields.update(error=type(exc).__name__, duration_ms=_ms(started))
            _exchanged(fields, time.perf_counter() - started)
            raise
        fields.update(status=response.status_code, duration_ms=_ms(started))
        _exchanged(fields, time.perf_counter() - started)
        return response


def describe(request) -> tuple[str, str | None]:
    """The operation a request performs (the URL's last segment, or InterPay's ACTION) and our
    reference if the message carries one."""
    path = urlsplit(request.url).path.rstrip("/")
    operation = path.rsplit("/", 1)[-1].removesuffix(".do") or "/"
    fields = _fields(request.body)
    if fields.get("ACTION"):
        operation = str(fields["ACTION"])
    reference = next((str(fields[k]) for k in _REFERENCE_FIELDS if fields.get(k)), None)
    return operation[:60], reference[:60] if reference else None


def _fields(body) -> dict[str, Any]:
    if not body:
        return {}
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    try:
        if text.lstrip().startswith("{"):
            data = json.loads(text)
            return data if isinstance(data, dict) else {}
        return {k: v[0] for k, v in parse_qs(text).items() if v}
    except ValueError:
        return {}


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _exchanged(fields: dict[str, Any], seconds: float) -> None:
    logs.gateway_exchange(fields)
    gateway, operation = fields["gateway"], fields["operation"]
    metrics.GATEWAY_SECONDS.labels(gateway, operation).observe(seconds)
    if fields.get("error"):
        metrics.GATEWAY_ERRORS.labels(gateway, operation, fields["error"]).inc()
    elif fields.get("status", 0) >= 500:
        metrics.GATEWAY_ERRORS.labels(gateway, operation, "http_5xx").inc()
