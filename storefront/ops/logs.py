"""Logs: one line per request and one per exchange with a gateway, as JSON or as text.

``STOREFRONT_LOG_FORMAT``: ``json`` (one object per line), ``text``, or ``auto`` (the default:
JSON in production, text elsewhere). Every line written inside a request carries its request
id: the trusted proxy's ``X-Request-ID`` when ``STOREFRONT_PROXY_COUNT`` > 0 (and it looks like
one), else one made here; either way it goes back in the response's ``X-Request-ID``.

What a line may hold is what the payment evidence already keeps: ids, states, codes, timings.
Never an email, a name, an address, card data, a query string, or the receipt and return
tokens in paths (``/order/[token]``, ``/pay/rbs/return/[token]``).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Flask, g, has_request_context, request

LOGGER = "storefront"
REQUEST_ID = "X-Request-ID"
_TRUSTED_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# The payment a line is about, where known: set when settle() takes up an attempt
# (observe.attempt), cleared at the start of every request.
attempt_context: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "storefront_attempt", default=None
)

_handler: logging.Handler | None = None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the line's own fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(_context_fields())
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The message, then ``name=value`` pairs: for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {**_context_fields(), **(getattr(record, "fields", None) or {})}
        pairs = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        text = f"{record.levelname} {record.name}: {record.getMessage()}"
        text = f"{text} {pairs}" if pairs else text
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def log_format(config: Mapping) -> str:
    chosen = config["LOG_FORMAT"]
    if chosen == "auto":
        return "json" if config["ENV"] == "production" else "text"
    return chosen


def init_app(app: Flask) -> None:
    """One handler on the shop's logger (once per process; the format is the latest app's),
    and the request hooks."""
    global _handler
    if _handler is None:
        _handler = logging.StreamHandler()
        logger = logging.getLogger(LOGGER)
        logger.addHandler(_handler)
        logger.setLevel(logging.INFO)
    _handler.setFormatter(JsonFormatter() if log_format(app.config) == "json" else TextFormatter())
    # Alembic's logging set-up (an upgrade run in this process) disables the loggers it finds.
    for name in (LOGGER, LOGGER + ".request", LOGGER + ".gateway", LOGGER + ".reconciler"):
        logging.getLogger(name).disabled = False
    app.before_request(_start_request)
    app.after_request(_end_request)


def _start_request() -> None:
    attempt_context.set(None)
    g.request_started = time.perf_counter()
    given = request.headers.get(REQUEST_ID, "")
    from flask import current_app

    # Only a trusted proxy's header is taken (PROXY_COUNT unset or 0: no proxy to trust).
    trusted = (current_app.config["PROXY_COUNT"] or 0) > 0 and _TRUSTED_ID.match(given)
    g.request_id = given if trusted else uuid.uuid4().hex


def _end_request(response):
    request_id = g.get("request_id") or uuid.uuid4().hex
    response.headers[REQUEST_ID] = request_id
    started = g.get("request_started")
    duration = time.perf_counter() - started if started is not None else 0.0
    g.request_duration = duration
    from storefront.ops import metrics

    metrics.record_request(response)
    logging.getLogger(LOGGER + ".request").info(
        "request",
        extra={
            "fields": {
                "method": request.method,
                "path": safe_path(),
                "endpoint": request.endpoint,
                "status": response.status_code,
                "duration_ms": round(duration * 1000, 1),
            }
        },
    )
    return response


def safe_path() -> str:
    """The request's path without its query string, each token in it replaced by ``[token]``."""
    path = request.path
    for name, value in (request.view_args or {}).items():
        if "token" in name and isinstance(value, str) and value:
            path = path.replace(value, f"[{name}]")
    return path


def gateway_exchange(fields: Mapping[str, Any]) -> None:
    """One line for one HTTP exchange with a gateway (see observe.instrument)."""
    level = logging.INFO if fields.get("error") is None else logging.WARNING
    logging.getLogger(LOGGER + ".gateway").log(level, "gateway", extra={"fields": dict(fields)})


def _context_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if has_request_context() and g.get("request_id"):
        fields["request_id"] = g.request_id
    bound = attempt_context.get()
    if bound:
        fields.update(bound)
    return fields
