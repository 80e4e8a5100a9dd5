"""The operator's pages: orders, one order with its payments' evidence, open payments.

Every page needs a signed-in, active staff user (see :mod:`storefront.admin.auth`); every action
is a POST with a CSRF token that goes through the back office's claim, so a double click or a
second operator makes one gateway call, not two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from storefront.admin import auth, cancel_service, order_service, queries, refund_service
from storefront.admin.forms import (
    AmountForm,
    CancelForm,
    CaptureMoreForm,
    EmptyForm,
    LineRefundForm,
    NoteForm,
    OrderFilterForm,
    ResendForm,
    SignInForm,
    required,
)
from storefront.admin.models import OrderNote
from storefront.admin.operations import (
    CHECKABLE,
    check_now,
    gateway_title,
    latest_answer,
    latest_evidence,
    look_up,
)
from storefront.extensions import db
from storefront.gateways import REGISTRY, configured
from storefront.gateways.base import Gateway
from storefront.money import to_major
from storefront.orders.models import Order, OrderEvent
from storefront.orders.refunds import refunds_of
from storefront.payments import backoffice
from storefront.payments.models import PaymentAttempt
from storefront.templating import money
from storefront.timeutil import as_utc, now_utc

bp = Blueprint("admin", __name__, url_prefix="/admin")

PUBLIC_ENDPOINTS = {"admin.sign_in", "admin.sign_in_code"}
ANSWERS = "admin_answers"  # session: the gateway's latest answers the operator asked for
KEPT_ANSWERS = 10  # the session is a cookie: keep it small
PAST = {"capture": "captured", "refund": "refunded"}
GATEWAY_SILENT = "The gateway did not answer; the outcome will be checked automatically."


@bp.before_request
def _require_staff():
    # One guard for the whole area, so that a page added later cannot forget it.
    if request.endpoint not in PUBLIC_ENDPOINTS and auth.current_staff() is None:
        return auth.redirect_to_sign_in()
    return None


@bp.context_processor
def _admin_globals() -> dict:
    return {"staff": auth.current_staff(), "sign_out_form": EmptyForm(formdata=None)}


@bp.app_template_global()
def action_in_flight(attempt: PaymentAttempt) -> bool:
    """Whether the back-office call on ``attempt`` may still be waiting for its answer (a
    second click while the first is under way), rather than have lost it: younger than the
    gateway's connect and read timeouts."""
    if not attempt.action or attempt.action_at is None:
        return False
    config = current_app.config
    limit = float(config["GATEWAY_CONNECT_TIMEOUT"]) + float(config["GATEWAY_READ_TIMEOUT"])
    return as_utc(attempt.action_at) > now_utc() - timedelta(seconds=limit)


@bp.app_template_filter("admin_time")
def admin_time(value: datetime | None) -> str:
    """A stored UTC time as the operator reads it (SQLite hands them back naive)."""
    return as_utc(value).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


@bp.app_template_filter("admin_iso")
def admin_iso(value: datetime | None) -> str:
    return as_utc(value).isoformat() if value else ""


def _operator() -> str:
    return auth.signed_in_staff().email


# Signing in and out ------------------------------------------------------------------------
@bp.route("/sign-in", methods=("GET", "POST"))
def sign_in():
    """The back office's sign-in form; on success, back to ``next`` (our own pages only).

    Answers 429 while the email (or the address) is throttled after repeated failures.
    """
    target = auth.safe_next(request.values.get("next"))
    if auth.current_staff() is not None:
        return redirect(target or url_for("admin.orders"))
    form = SignInForm(next=target or "")
    error, status = None, 200
    if form.validate_on_submit():
        try:
            user = auth.authenticate(
                form.email.data, form.password.data, request.remote_addr or "-"
            )
        except auth.Throttled:
            error, status = "Too many failed sign-ins. Wait a few minutes, then try again.", 429
        except auth.SignInRefused:
            error = "The email or the password is not right."
        else:
            if user.totp_enabled:  # the password was right; now the code from the app
                auth.start_second_step(user)
                return redirect(url_for("admin.sign_in_code", next=form.next.data), code=303)
            auth.start_session(user)
            flash(f"Signed in as {user.display_name}.")
            return redirect(auth.safe_next(form.next.data) or url_for("admin.orders"), code=303)
    return render_template("admin/sign_in.html", form=form, error=error), status


@bp.post("/sign-out")
def sign_out():
    """Sign out (a POST with a CSRF token: a link or an image cannot sign anyone out)."""
    auth.end_session()
    flash("You are signed out.")
    return redirect(url_for("admin.sign_in"), code=303)


# Orders --------------------------------------------------------------------------------------
@bp.get("/orders")
def orders():
    """Orders, newest first, filtered by state, gateway, dates and a search; invalid filters
    are ignored and said so."""
    form, filters = order_filters()
    page, page_error = _page_number()
    per_page = current_app.config["ADMIN_ORDERS_PER_PAGE"]
    pagination = queries.orders_page(filters, page, per_page)
    ignored = [(form[name].label.text, errors) for name, errors in form.errors.items()]
    if page_error:
        ignored.append(("Page", [page_error]))
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template(
        "admin/orders.html",
        form=form,
        pagination=pagination,
        ignored=ignored,
        page_url=lambda number: url_for("admin.orders", page=number, **args),
        export_url=url_for("admin.orders_csv", **args),
        gateway_title=gateway_title,
    )


def order_filters() -> tuple[OrderFilterForm, queries.OrderFilters]:
    """The orders list's filters from the query string; those that do not validate are left
    out (the form keeps their errors to say so)."""
    form = OrderFilterForm(formdata=request.args)
    form.gateway.choices = [("", "Any gateway")] + [(g, gateway_title(g)) for g in REGISTRY]
    form.validate()
    usable = {
        name: getattr(form, name).data
        for name in ("q", "state", "gateway", "date_from", "date_to")
        if not getattr(form, name).errors and getattr(form, name).data
    }
    return form, queries.OrderFilters(**usable)


def _page_number() -> tuple[int, str | None]:
    raw = request.args.get("page", "1")
    if raw.isdigit() and 0 < int(raw) < 1_000_000:
        return int(raw), None
    return 1, f"{raw[:20]!r} is not a page number; showing the first page."


def _order_or_404(number: str) -> Order:
    """:raise 404: no order has this number."""
    order = queries.order_whole(number) if len(number) <= 16 else None
    if order is None:
        abort(404)
    return order


@bp.get("/orders/<number>")
def order(number: str):
    """One order: lines, customer, history, and each payment with its evidence and actions.

    :raise 404: unknown order number.
    """
    return _render_order(_order_or_404(number))


@dataclass
class PaymentPanel:
    """One payment attempt as the order page shows it, with the forms its state allows."""

    attempt: PaymentAttempt
    gateway: Gateway | None
    capturable: int
    refundable: int
    reversible: bool = False
    # After a partial capture: what is still held on the card, what of it may be captured
    # more or released, and what the gateway did not keep (``Gateway.rest_after_capture``).
    held: int = 0
    more_capturable: int = 0
    releasable: int = 0
    rest_not_held: int = 0
    forms: dict = field(default_factory=dict)

    @property
    def title(self) -> str:
        return self.gateway.title if self.gateway is not None else self.attempt.gateway

    @property
    def supports_refund(self) -> bool:
        return bool(self.gateway is not None and self.gateway.supports_refund)

    @property
    def checkable(self) -> bool:
        return self.gateway is not None and (
            self.attempt.state in CHECKABLE or bool(self.attempt.action)
        )

    @property
    def answer(self):
        return latest_answer(self.attempt)


def _panel(attempt: PaymentAttempt, bound: dict) -> PaymentPanel:
    gateway = configured(attempt.gateway)
    panel = PaymentPanel(
        attempt=attempt,
        gateway=gateway,
        capturable=backoffice.capturable(attempt) if gateway else 0,
        refundable=backoffice.refundable(attempt) if gateway else 0,
        reversible=backoffice.reversible(attempt),
        held=backoffice.held(attempt) if gateway else 0,
        more_capturable=backoffice.more_capturable(attempt),
        releasable=backoffice.releasable(attempt),
        rest_not_held=backoffice.rest_not_held(attempt) if gateway else 0,
    )
    for action, maximum in (("capture", panel.capturable), ("refund", panel.refundable)):
        panel.forms[action] = bound.get((attempt.id, action)) or AmountForm(
            action,
            attempt.currency,
            maximum,
            prefix=f"{action}-{attempt.id}",
            formdata=None,
            data={"amount": to_major(maximum, attempt.currency)},
        )
    more = bound.get((attempt.id, "capture more")) or CaptureMoreForm(
        attempt.currency,
        panel.more_capturable,
        prefix=f"capture-more-{attempt.id}",
        formdata=None,
        data={"amount": to_major(panel.more_capturable, attempt.currency)},
    )
    more.seen.data = str(attempt.captured)  # a corrected form is sent against the page now
    panel.forms["capture more"] = more
    for action in ("void", "check", "release-rest"):
        panel.forms[action] = EmptyForm(prefix=f"{action}-{attempt.id}", formdata=None)
    return panel


@dataclass(frozen=True)
class HistoryEntry:
    """One line of the order's history: a change of its state, or a staff member's note."""

    at: datetime
    event: OrderEvent | None = None
    note: OrderNote | None = None


def _history(order: Order) -> list[HistoryEntry]:
    entries = [HistoryEntry(as_utc(event.at), event=event) for event in order.events]
    entries += [HistoryEntry(as_utc(note.at), note=note) for note in queries.notes_of(order)]
    return sorted(entries, key=lambda entry: entry.at)  # stable: a tie keeps events first


@dataclass
class LineRefundPanel:
    """The refund-by-line form of a paid order: its lines with what is left of each."""

    attempt: PaymentAttempt
    supported: bool
    refundable: int
    lines: list[refund_service.RefundableLine]
    delivery: bool
    form: LineRefundForm
    problems: list[str]
    refunds: list = field(default_factory=list)
    names: dict = field(default_factory=dict)  # line id → name, for the refunds made


def _line_refund_panel(
    order: Order, form: LineRefundForm | None, problems: list[str]
) -> LineRefundPanel | None:
    attempt = refund_service.payment_to_refund(order)
    if attempt is None:
        return None
    gateway = configured(attempt.gateway)
    seen = str(refund_service.refunds_seen(order))
    if form is None:
        form = LineRefundForm(prefix="lines", formdata=None, data={"seen": seen})
    else:
        form.seen.data = seen  # a corrected form is sent against what the page shows now
    return LineRefundPanel(
        attempt=attempt,
        supported=bool(gateway is not None and gateway.supports_refund),
        refundable=backoffice.refundable(attempt),
        lines=refund_service.refundable_lines(order),
        delivery=refund_service.delivery_refundable(order),
        form=form,
        problems=problems,
        refunds=refunds_of(order),
        names={line.id: line.name for line in order.lines},
    )


def _render_order(
    order: Order,
    bound: dict | None = None,
    status: int = 200,
    note_form: NoteForm | None = None,
    cancel_form: CancelForm | None = None,
    line_refund_form: LineRefundForm | None = None,
    line_problems: list[str] | None = None,
):
    panels = [_panel(attempt, bound or {}) for attempt in reversed(order.attempts)]
    resend_form = None
    if order.state in order_service.RESENDABLE:
        sent = order_service.resends(order)
        resend_form = ResendForm(prefix="resend", formdata=None, data={"sent": str(sent)})
    if cancel_form is None and cancel_service.cancellable(order):
        cancel_form = CancelForm(prefix="cancel", formdata=None)
    return render_template(
        "admin/order.html",
        order=order,
        panels=panels,
        history=_history(order),
        other_orders=queries.other_orders(order),
        note_form=note_form or NoteForm(prefix="note", formdata=None),
        resend_form=resend_form,
        cancel_form=cancel_form if cancel_service.cancellable(order) else None,
        cancel_needs_permission=cancel_service.needs_permission(order),
        line_refund=_line_refund_panel(order, line_refund_form, line_problems or []),
    ), status


def _attempt_or_404(number: str, attempt_id: int) -> tuple[Order, PaymentAttempt]:
    """:raise 404: unknown order, or the payment is not this order's."""
    order = _order_or_404(number)
    attempt = queries.attempt_of(order, attempt_id)
    if attempt is None:
        abort(404)
    return order, attempt


def _back_to(order: Order, attempt: PaymentAttempt):
    return redirect(
        url_for("admin.order", number=order.number, _anchor=f"payment-{attempt.id}"), code=303
    )


def _run_action(order: Order, attempt: PaymentAttempt, call, done: str):
    """Run a back-office action and tell the operator what the gateway answered."""
    try:
        call()
    except backoffice.ActionRefused as refused:
        flash(str(refused), "error")
    except backoffice.ActionUnknown:
        flash(GATEWAY_SILENT, "error")
    else:
        answer = latest_evidence(attempt.id)
        said = f" From the evidence: {answer.summary}." if answer is not None else ""
        flash(f"{done} The payment is now {attempt.state.replace('_', ' ')}.{said}")
    return _back_to(order, attempt)


def _amount_action(number: str, attempt_id: int, action: str):
    order, attempt = _attempt_or_404(number, attempt_id)
    limit = backoffice.capturable if action == "capture" else backoffice.refundable
    maximum = limit(attempt)
    form = AmountForm(action, attempt.currency, maximum, prefix=f"{action}-{attempt.id}")
    if maximum <= 0:
        # Already done (a second click after the first finished) or never possible here.
        flash(
            f"Nothing can be {PAST[action]} on this payment: it is "
            f"{attempt.state.replace('_', ' ')}.",
            "error",
        )
        return _back_to(order, attempt)
    if not form.validate_on_submit():
        return _render_order(order, bound={(attempt.id, action): form}, status=422)
    run = backoffice.capture if action == "capture" else backoffice.refund
    amount = required(form.minor)
    shown = money(amount, attempt.currency)
    return _run_action(
        order,
        attempt,
        lambda: run(attempt, amount, _operator()),
        f"{action.capitalize()} of {shown} done.",
    )


@bp.post("/orders/<number>/payments/<int:attempt_id>/capture")
@auth.money_permission_required
def capture(number: str, attempt_id: int):
    """Capture all or part of a held payment. :raise 404: unknown order or payment."""
    return _amount_action(number, attempt_id, "capture")


@bp.post("/orders/<number>/payments/<int:attempt_id>/refund")
@auth.money_permission_required
def refund(number: str, attempt_id: int):
    """Refund all or part of a captured payment. :raise 404: unknown order or payment."""
    return _amount_action(number, attempt_id, "refund")


@bp.post("/orders/<number>/payments/<int:attempt_id>/capture-more")
@auth.money_permission_required
def capture_more(number: str, attempt_id: int):
    """Capture more of what a partial capture left held. :raise 404: unknown order or payment."""
    order, attempt = _attempt_or_404(number, attempt_id)
    maximum = backoffice.more_capturable(attempt)
    form = CaptureMoreForm(attempt.currency, maximum, prefix=f"capture-more-{attempt.id}")
    if maximum <= 0:
        flash(
            "Nothing more can be captured on this payment: nothing of it is held any more.",
            "error",
        )
        return _back_to(order, attempt)
    if not form.validate_on_submit():
        return _render_order(order, bound={(attempt.id, "capture more"): form}, status=422)
    amount, seen = required(form.minor), int(required(form.seen.data))
    return _run_action(
        order,
        attempt,
        lambda: backoffice.capture_more(attempt, amount, _operator(), seen),
        f"Capture of {money(amount, attempt.currency)} more done.",
    )


@bp.post("/orders/<number>/payments/<int:attempt_id>/release-rest")
@auth.money_permission_required
def release_rest(number: str, attempt_id: int):
    """Give back to the card what a partial capture left held. :raise 404: unknown order or
    payment."""
    order, attempt = _attempt_or_404(number, attempt_id)
    rest = money(backoffice.releasable(attempt), attempt.currency)
    return _run_action(
        order,
        attempt,
        lambda: backoffice.release_rest(attempt, _operator()),
        f"The rest of the hold ({rest}) is released.",
    )


@bp.post("/orders/<number>/payments/<int:attempt_id>/void")
@auth.money_permission_required
def void(number: str, attempt_id: int):
    """Release a held payment in full. :raise 404: unknown order or payment."""
    order, attempt = _attempt_or_404(number, attempt_id)
    return _run_action(order, attempt, lambda: backoffice.void(attempt, _operator()), "Void done.")


@bp.post("/orders/<number>/payments/<int:attempt_id>/check")
def check(number: str, attempt_id: int):
    """Ask the gateway now and apply its answer. :raise 404: unknown order or payment."""
    order, attempt = _attempt_or_404(number, attempt_id)
    outcome = check_now(attempt, _operator())
    flash(outcome.message, "message" if outcome.ok else "error")
    return _back_to(order, attempt)


# Reconciliation ------------------------------------------------------------------------------
@bp.get("/reconciliation")
def reconciliation():
    """Payments still open, held or with an action under way, and what their gateways say."""
    attempts = queries.open_payments()
    answers = session.get(ANSWERS) or {}
    rows = [
        {
            "attempt": attempt,
            "answer": answers.get(str(attempt.id)),
            "ask_form": EmptyForm(prefix=f"ask-{attempt.id}", formdata=None),
            "check_form": EmptyForm(prefix=f"check-{attempt.id}", formdata=None),
        }
        for attempt in attempts
    ]
    return render_template("admin/reconciliation.html", rows=rows, gateway_title=gateway_title)


def _payment_or_404(attempt_id: int) -> PaymentAttempt:
    return db.get_or_404(PaymentAttempt, attempt_id)


@bp.post("/reconciliation/<int:attempt_id>/ask")
def ask_gateway(attempt_id: int):
    """Ask the gateway what it says about a payment, changing nothing.

    :raise 404: unknown payment.
    """
    attempt = _payment_or_404(attempt_id)
    answer = look_up(attempt, _operator())
    number = attempt.order.number
    if answer is None:
        flash(f"Order {number}: the gateway {attempt.gateway} is not configured here.", "error")
    else:
        answers = dict(session.get(ANSWERS) or {})
        answers.pop(str(attempt.id), None)
        answers[str(attempt.id)] = answer
        session[ANSWERS] = dict(list(answers.items())[-KEPT_ANSWERS:])
        flash(
            f"Order {number}: the gateway says {answer['outcome']} "
            f"({answer['codes'] or 'no codes'}); ours is {attempt.state.replace('_', ' ')}. "
            "Nothing was changed."
        )
    return redirect(url_for("admin.reconciliation", _anchor=f"payment-{attempt.id}"), code=303)


@bp.post("/reconciliation/<int:attempt_id>/check")
def reconcile_one(attempt_id: int):
    """Ask the gateway and apply its answer. :raise 404: unknown payment."""
    attempt = _payment_or_404(attempt_id)
    outcome = check_now(attempt, _operator())
    flash(f"Order {attempt.order.number}: {outcome.message}", "message" if outcome.ok else "error")
    return redirect(url_for("admin.reconciliation", _anchor=f"payment-{attempt.id}"), code=303)


@bp.get("/<path:anything>")
def unknown(anything: str):
    """Any other path under /admin: sign-in first (by the guard above), then 404 — or 405 for
    a GET of an action that is a POST only, such as sign-out.

    :raise 404: no such page.
    :raise 405: the page takes POSTs only.
    """
    try:
        current_app.url_map.bind_to_environ(request.environ).match(method="POST")
    except HTTPException:
        abort(404)
    raise MethodNotAllowed(valid_methods=["POST"])


# The catalogue, stock and staff pages join this blueprint (and its guard) from their modules.
from storefront.admin import (  # noqa: E402, F401
    catalogue,
    dashboard,
    delivery,
    export,
    fulfilment,
    notes,
    order_actions,
    staff,
)
