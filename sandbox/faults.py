"""Armed faults, applied to a sandbox endpoint by the ``faultable`` decorator.

A test arms a fault through the control API (``POST /__control/faults``); the next call of that
endpoint takes it. Faults that answer instead of the endpoint: ``http_500``, ``http_503``,
``http_400``, ``html`` (a 200 HTML error page where the protocol wants JSON/XML), ``garbage`` (a
truncated body), ``hang`` (sleep past the client's timeout, then answer normally: the request
*was* processed, the client just never heard). ``delay`` answers normally after a pause;
``wrong_content_type`` answers normally with a content type the protocol does not use. Any other
fault name is the protocol's own: the view finds it in ``flask.g.sandbox_fault`` as
``(fault, params)`` and applies it.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, cast

from flask import Flask, Response, current_app, g

if TYPE_CHECKING:
    from werkzeug.local import LocalProxy

    from sandbox.store import Store

MAX_SLEEP = 120.0


def store() -> Store:
    return current_app.extensions["sandbox_store"]


def this_app() -> Flask:
    """The application itself, not the context-local proxy (for threads and later calls)."""
    return cast("LocalProxy[Flask]", current_app)._get_current_object()


def faultable(gateway: str, op: str):
    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            taken = store().take_fault(gateway, op)
            if taken is None:
                return view(*args, **kwargs)
            fault, params = taken
            if fault in ("http_500", "http_503", "http_400"):
                code = int(fault.removeprefix("http_"))
                return Response(f"sandbox fault: HTTP {code}", status=code, mimetype="text/plain")
            if fault == "html":
                return Response(
                    "<!doctype html><title>Service unavailable</title><h1>Maintenance</h1>",
                    status=200,
                    mimetype="text/html",
                )
            if fault == "garbage":
                return Response(params.get("body", '{"errorCo'), status=200, mimetype="text/plain")
            if fault in ("hang", "delay"):
                default = 30.0 if fault == "hang" else 1.0
                time.sleep(min(float(params.get("seconds", default)), MAX_SLEEP))
                return view(*args, **kwargs)
            if fault == "wrong_content_type":
                response = current_app.make_response(view(*args, **kwargs))
                response.mimetype = "text/html"
                return response
            # A protocol's own fault (a tampered amount, a missing SecureID, …): the view reads it.
            g.sandbox_fault = (fault, params)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def protocol_fault() -> tuple[str, dict] | tuple[None, dict]:
    """The protocol-specific fault armed for this call, if any: ``(name, params)``."""
    return g.get("sandbox_fault") or (None, {})
