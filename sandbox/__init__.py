"""The sandbox gateway: one WSGI app that speaks the three wire protocols the shop supports.

It stands in for BPC/RBS (``/rbs/…``), AltaPay (``/altapay/…``) and InterPay (``/interpay/…``)
with hosted payment pages, test cards and fault injection (``/__control``, only for holders of
``SANDBOX_CONTROL_TOKEN``), so that the shop runs end to end with no credentials and no network.
It never imports ``storefront``: the two meet only over HTTP, exactly as the shop meets a real
gateway.

Run it on its own with ``python -m sandbox --port 5001``, or mounted under ``/sandbox`` of the
shop's own process (``app.py`` does that when ``STOREFRONT_SANDBOX`` is on).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping

from flask import Flask

from sandbox.languages import say, shown_in
from sandbox.store import Store

DEFAULTS = {
    # Where the state lives: ":memory:" for one process; a file path to share it between the
    # processes of a multi-worker web server.
    "SANDBOX_DB": ":memory:",
    # The secret the control API (/__control/*, /__state, /__reset) asks for in the
    # X-Sandbox-Control header; "" = no control API at all (404).
    "SANDBOX_CONTROL_TOKEN": "",
    # BPC/RBS merchant account
    "SANDBOX_RBS_USERNAME": "sandbox-merchant",
    "SANDBOX_RBS_PASSWORD": "sandbox-password",
    "SANDBOX_RBS_CALLBACK_KEY": "sandbox-callback-key",
    # A static callback URL for the merchant, as set up in a BPC merchant profile ("" = none;
    # register's dynamicCallbackUrl overrides it per order).
    "SANDBOX_RBS_CALLBACK_URL": "",
    "SANDBOX_RBS_SESSION_TIMEOUT": 1200,
    # How long after a one-phase payment reverse.do may still cancel it (seconds; the bank's
    # settlement cut-off, typically the same day). Later, only a refund gives the money back.
    "SANDBOX_RBS_REVERSE_WINDOW": 86400,
    # AltaPay API user and terminal
    "SANDBOX_ALTAPAY_USERNAME": "sandbox-api",
    "SANDBOX_ALTAPAY_PASSWORD": "sandbox-password",
    "SANDBOX_ALTAPAY_TERMINAL": "Storefront Sandbox Terminal",
    "SANDBOX_ALTAPAY_SECRET": "sandbox-shared-secret",
    "SANDBOX_ALTAPAY_CONNECT_TIMEOUT": 7.0,
    "SANDBOX_ALTAPAY_READ_TIMEOUT": 28.0,
    # InterPay terminal
    "SANDBOX_INTERPAY_TERMID": "SANDBX01",
    "SANDBOX_INTERPAY_PASS": "sandbox-pass",
    "SANDBOX_INTERPAY_ACK_WINDOW": 180,
}

PROTOCOLS = ("rbs", "altapay", "interpay")


def create_app(config: Mapping | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    for key in DEFAULTS:
        if key in os.environ:
            app.config[key] = os.environ[key]
    app.config.update(config or {})
    app.extensions["sandbox_store"] = Store(app.config["SANDBOX_DB"])
    # A hosted page's texts in the language of its payment request (sandbox.languages).
    app.jinja_env.globals.update(say=say, shown_in=shown_in)

    from sandbox import control

    app.register_blueprint(control.bp)
    for name in PROTOCOLS:
        # A protocol module that is not there yet is simply not spoken.
        try:
            module = importlib.import_module(f"sandbox.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"sandbox.{name}":
                raise
            continue
        app.register_blueprint(module.bp, url_prefix=f"/{name}")
    return app
