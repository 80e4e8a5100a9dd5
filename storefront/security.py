"""Security headers on every response.

The whole shop works without JavaScript, so the Content-Security-Policy forbids scripts
outright; ``form-action`` allows our own origin and the configured gateways' (the checkout
form posts to us, and we answer with a redirect to the gateway).
"""

from __future__ import annotations

from flask import Flask, current_app, request

from storefront.config import gateway_origins


def init_app(app: Flask) -> None:
    app.after_request(_headers)


# Pages with a customer's name, address or order on them, and the operator's pages: no
# browser, proxy or back button may keep a copy.
PRIVATE_BLUEPRINTS = {"orders", "checkout", "payments", "admin"}


def _headers(response):
    config = current_app.config
    form_targets = " ".join(["'self'", *gateway_origins(config)])
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; "
        f"frame-ancestors 'none'; form-action {form_targets}; img-src 'self' data:; "
        "style-src 'self'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if request.blueprint in PRIVATE_BLUEPRINTS:
        response.headers["Cache-Control"] = "no-store"
    if config["PUBLIC_URL"].startswith("https://"):
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response
