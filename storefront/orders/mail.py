"""The customer's mails, sent from the outbox after the commit that queued each one.

Each kind is a template pair ``email/<kind>.txt`` / ``.html`` and a subject in ``SUBJECTS``;
``orders.models.ORDER_MAILS`` says which move of an order queues which.

With ``STOREFRONT_MAIL_URL`` (``smtp://user:pass@host:587`` or ``smtps://…``) messages go out
through SMTP; without it they are written to ``instance/mail/`` so the demo works offline.
A message is claimed with a conditional update before it is sent, so concurrent drains (two
server processes, the reconciler) never send one message twice; a claim left by a process that
died mid-send is taken over after ``STOREFRONT_MAIL_CLAIM_TIMEOUT`` seconds.
"""

from __future__ import annotations

import secrets
import smtplib
from collections.abc import Collection
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote, urlsplit

from flask import (
    after_this_request,
    current_app,
    g,
    has_request_context,
    render_template,
    url_for,
)
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select, update

from storefront.database import rows_changed
from storefront.extensions import db
from storefront.i18n import force_locale
from storefront.orders import paylink
from storefront.orders.models import Order, OutboxMessage, mail_kind
from storefront.orders.shipping import shipment_of
from storefront.timeutil import now_utc

SMTP_TIMEOUT = 20
# Each message kind's subject line, read in the language the mail is composed in. The English
# ones end in the word that names the kind ("Storefront: order 12345678 confirmed").
SUBJECTS = {
    "order_received": _l("%(shop)s: order %(number)s received"),
    "order_confirmation": _l("%(shop)s: order %(number)s confirmed"),
    "payment_failed": _l("%(shop)s: order %(number)s not paid yet"),
    "refunded": _l("%(shop)s: order %(number)s refunded"),
    "dispatched": _l("%(shop)s: order %(number)s dispatched"),
    "order_cancelled": _l("%(shop)s: order %(number)s cancelled"),
    "order_expired": _l("%(shop)s: order %(number)s expired"),
}


def drain_after_response(order_id: int) -> None:
    """Send the order's queued mails once the current response has gone out: a gateway waiting
    for our answer (AltaPay gives up after 28 s) must not wait for a mail server. Outside a
    request, send now.

    Only the mails of the orders this request names: a mail left unsent earlier (a mail
    server that was down) is the reconciler's (``drain``). Every response sweeping the whole
    outbox had concurrent checkouts trying to claim each other's mails, a commit each."""
    if not has_request_context():
        drain(orders=[order_id])
        return
    orders = g.get("mail_orders")
    if orders is not None:  # already scheduled: this order's mails go out with the others
        orders.add(order_id)
        return
    orders = g.mail_orders = {order_id}
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # the proxy's

    @after_this_request
    def schedule(response):
        response.call_on_close(lambda: _drain_in(app, sorted(orders)))
        return response


def _drain_in(app, orders: list[int]) -> None:
    with app.app_context():
        try:
            drain(orders=orders)
        finally:
            db.session.remove()


def drain(limit: int = 20, orders: Collection[int] | None = None) -> int:
    """Send unsent messages (of these ``orders`` only, when given); the number sent."""
    if not has_request_context():
        # The reconciler drains outside any request: mails still link to the public URL.
        with current_app.test_request_context(base_url=current_app.config["PUBLIC_URL"]):
            return drain(limit, orders)
    unsent = select(OutboxMessage.id).where(OutboxMessage.sent_at.is_(None))
    if orders is not None:
        unsent = unsent.where(OutboxMessage.order_id.in_(orders))
    pending = db.session.execute(unsent.order_by(OutboxMessage.id).limit(limit)).scalars().all()
    sent = 0
    for message_id in pending:
        if _claim(message_id):
            sent += _send(db.session.get_one(OutboxMessage, message_id))
    return sent


def _claim(message_id: int) -> bool:
    now = now_utc()
    stale = now - timedelta(seconds=float(current_app.config["MAIL_CLAIM_TIMEOUT"]))
    claimed = rows_changed(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == message_id,
            OutboxMessage.sent_at.is_(None),
            or_(OutboxMessage.claimed_at.is_(None), OutboxMessage.claimed_at < stale),
        )
        .values(claimed_at=now, tries=OutboxMessage.tries + 1)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return claimed == 1


def _send(message: OutboxMessage) -> int:
    order = db.session.get_one(Order, message.order_id)
    try:
        email = _compose(mail_kind(message.kind), order)
        _deliver(email, f"{order.number}-{message.kind}")
    except (OSError, smtplib.SMTPException) as exc:
        current_app.logger.warning("mail for order %s not sent: %s", order.number, exc)
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message.id)
            .values(claimed_at=None, last_error=str(exc)[:500])
        )
        db.session.commit()
        return 0
    db.session.execute(
        update(OutboxMessage).where(OutboxMessage.id == message.id).values(sent_at=now_utc())
    )
    db.session.commit()
    return 1


def _compose(kind: str, order: Order) -> EmailMessage:
    """The message in the order's language, not the one of the request that happens to send
    it: a drain after another customer's page, or the reconciler, speaks for this order."""
    with force_locale(order.locale):
        return _compose_in_locale(kind, order)


def _compose_in_locale(kind: str, order: Order) -> EmailMessage:
    config = current_app.config
    public = config["PUBLIC_URL"]
    captured = sum(attempt.captured for attempt in order.attempts)
    refunded = sum(attempt.refunded for attempt in order.attempts)
    context = {
        "order": order,
        "receipt_url": public + url_for("orders.show", token=order.receipt_token),
        "lookup_url": public + url_for("orders.lookup"),
        "shipment": shipment_of(order),
        "seller": {
            "name": config["SELLER_NAME"],
            "address": config["SELLER_ADDRESS"],
            "vat_number": config["SELLER_VAT_NUMBER"],
        },
        # A refund's mail says what has gone back so far and what the shop still holds: the
        # figures when it is written, which a later refund's own mail brings up to date.
        "refunded": refunded,
        "remaining": captured - refunded,
    }
    if kind == "payment_failed":
        context["pay_url"] = public + url_for(
            "orders.pay_now", number=order.number, token=paylink.token_for(order.number)
        )
    email = EmailMessage()
    email["Subject"] = str(SUBJECTS[kind]) % {"shop": config["SHOP_NAME"], "number": order.number}
    email["From"] = current_app.config["MAIL_FROM"]
    email["To"] = order.email
    email.set_content(render_template(f"email/{kind}.txt", **context))
    email.add_alternative(render_template(f"email/{kind}.html", **context), subtype="html")
    return email


def _deliver(email: EmailMessage, name: str) -> None:
    url = current_app.config["MAIL_URL"]
    if not url:
        folder = Path(current_app.instance_path) / "mail"
        folder.mkdir(parents=True, exist_ok=True)
        # One file per sending, never overwritten: a mail sent twice shows as two files.
        stamp = f"{now_utc():%Y%m%dT%H%M%S%f}-{secrets.token_hex(3)}"
        # Written aside, then renamed: whoever reads the folder never sees half a mail.
        target = folder / f"{name}-{stamp}.eml"
        partial = target.with_suffix(".part")
        partial.write_bytes(bytes(email))
        partial.replace(target)
        return
    parts = urlsplit(url)
    smtp_class = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
    with smtp_class(parts.hostname, parts.port or 0, timeout=SMTP_TIMEOUT) as smtp:
        if parts.scheme == "smtp" and parts.port == 587:
            smtp.starttls()
        if parts.username:
            smtp.login(unquote(parts.username), unquote(parts.password or ""))
        smtp.send_message(email)
