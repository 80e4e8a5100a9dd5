"""Operations: what a person running the shop watches, and what their tools ask.

- ``/healthz``: the process answers (no database); ``/readyz``: it can serve customers
  (:mod:`storefront.ops.health`); ``flask ops check`` runs the same checks from a shell.
- one log line per request and per gateway exchange, with a request id
  (:mod:`storefront.ops.logs`), fed by the payment code's one-line hooks
  (:mod:`storefront.ops.observe`);
- ``/metrics`` for Prometheus (:mod:`storefront.ops.metrics`);
- ``ops.alerts()``: what needs a person now (:mod:`storefront.ops.alerting`), shown on the
  admin's reconciliation page (the template global ``ops_alerts``) and exported as gauges.

The endpoints are cheap, unauthenticated and not rate limited (no ``limited`` decorator).
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from storefront.ops import logs, metrics
    from storefront.ops.cli import ops_cli
    from storefront.ops.views import bp

    app.register_blueprint(bp)
    app.register_blueprint(metrics.bp)
    app.cli.add_command(ops_cli)
    logs.init_app(app)
    # Called by the template that shows them, so no other page pays for the queries.
    app.jinja_env.globals["ops_alerts"] = alerts


def alerts():
    """The alerts firing now (:func:`storefront.ops.alerting.alerts`)."""
    from storefront.ops.alerting import alerts as firing

    return firing()
