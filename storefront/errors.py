"""Error pages: every failure a person can cause gets a clear page, never a stack trace."""

from __future__ import annotations

from flask import Flask, current_app, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, SecurityError

from storefront.extensions import db
from storefront.gateways import REGISTRY

# Lazy: read in the language of the request that fails.
MESSAGES = {
    400: (_l("Bad request"), _l("The request could not be understood. Nothing was changed.")),
    403: (_l("Not allowed"), _l("This action is not allowed.")),
    404: (_l("Not found"), _l("There is nothing here. The link may be mistyped or out of date.")),
    405: (_l("Method not allowed"), _l("This page cannot be used that way.")),
    409: (_l("Conflict"), _l("This changed in the meantime. Please reload and try again.")),
    413: (_l("Too large"), _l("The request was too large.")),
    429: (_l("Too many requests"), _l("Please wait a moment before trying again.")),
    500: (
        _l("Something went wrong"),
        _l("An error occurred on our side. Nothing was charged twice."),
    ),
    502: (_l("Payment service unavailable"), _l("We could not reach the payment service.")),
    503: (_l("Temporarily unavailable"), _l("Please try again in a minute.")),
}


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(ArithmeticError, _number_out_of_range)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


def render_error(code: int, detail: str | None = None):
    title, message = MESSAGES.get(code, (_l("Error"), _l("The request could not be completed.")))
    if _wants_text():
        return f"{code} {title}: {detail or message}\n", code, {"Content-Type": "text/plain"}
    return render_template(
        "errors/error.html",
        code=code,
        title=title,
        message=detail or message,
        # The language links lead home: the page is the same whatever address failed.
        language_next=url_for("catalogue.home"),
    ), code


def _wants_text() -> bool:
    # Gateways calling our server-to-server pages get a short plain-text answer, except on the
    # pages whose answer the gateway shows the customer (AltaPay's ok/fail/open).
    if request.blueprint != "payments" or request.endpoint == "payments.browser_return":
        return False
    args = request.view_args or {}
    family = REGISTRY.get(str(args.get("gateway", "")))
    return family is None or args.get("kind") not in family.relayed_kinds


def _csrf_error(error: CSRFError):
    return render_error(
        400,
        _l("This form has expired or was sent from elsewhere. Please go back, reload and retry."),
    )


def _number_out_of_range(error: ArithmeticError):
    # Only a number someone sent can be this far out of range (every amount of ours is a
    # bounded integer): the request is at fault, and nothing was changed by it.
    db.session.rollback()
    current_app.logger.warning("number out of range in %s: %s", request.path, error)
    return render_error(400, _l("A number in the request is out of range. Nothing was changed."))


def _http_error(error: HTTPException):
    code = error.code or 500
    if isinstance(error, SecurityError):
        # A Host header the shop does not answer to: no page of ours (every link on it would
        # be built from that host), just the refusal.
        return "400 Bad Request: unknown host\n", 400, {"Content-Type": "text/plain"}
    detail = error.description if code in (400, 409) and error.description else None
    if detail and detail == type(error).description:
        detail = None
    return render_error(code, detail)


def _unexpected(error: Exception):
    # Roll back whatever the failed request left half-done before rendering the page.
    db.session.rollback()
    current_app.logger.error("unhandled error", exc_info=error)
    return render_error(500)
