"""Signing staff in and out, and keeping everyone else out of the operator's pages.

The session is Flask's signed cookie. Signing in clears it and writes a new one, so nothing a
visitor carried in before (a planted session, a cart) is carried over into a staff session.
The session holds the staff id, a stamp of the password hash and the time of sign-in: a new
password, a deactivated account or an old sign-in each end it on the next request.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from urllib.parse import urlsplit

from flask import current_app, flash, g, redirect, request, session, url_for
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from storefront.admin import sessions, twofactor
from storefront.admin.models import StaffUser, normalise_email
from storefront.errors import render_error
from storefront.extensions import db
from storefront.ratelimit import count, hit
from storefront.timeutil import now_utc

SESSION_KEY = "staff"


class SignInRefused(Exception):
    """Wrong email, wrong password or an inactive account: deliberately the same to the caller."""


class Throttled(SignInRefused):
    """Too many failed sign-ins lately for this email from this address (or from this address)."""


def setting(name: str) -> int:
    """One of the ADMIN_* settings (storefront.config), in whole units."""
    return int(current_app.config[name])


# Who is signed in --------------------------------------------------------------------------
def current_staff() -> StaffUser | None:
    """The signed-in, active staff user of this request, or None."""
    if "staff" not in g:
        g.staff = _staff_from_session()
    return g.staff


def signed_in_staff() -> StaffUser:
    """The staff user of a request past the area's guard, which lets no one else through."""
    user = current_staff()
    if user is None:
        raise RuntimeError("no staff user is signed in: the page is missing its guard")
    return user


def _staff_from_session() -> StaffUser | None:
    data = session.get(SESSION_KEY)
    if not isinstance(data, dict):
        return None
    staff_id, stamp, signed_in_at = data.get("id"), data.get("stamp"), data.get("at")
    sid = data.get("sid")
    if not isinstance(staff_id, int) or not isinstance(signed_in_at, int | float):
        return None
    if not isinstance(sid, str) or sessions.has_ended(sid):
        return None  # signed out: a copy of the cookie kept from before is worth nothing
    if time.time() - signed_in_at > setting("ADMIN_SESSION_HOURS") * 3600:
        return None
    user = db.session.get(StaffUser, staff_id)
    if user is None or not user.active or stamp != user.session_stamp:
        return None
    return user


def login_required(view):
    """Send anyone who is not a signed-in, active staff user to the sign-in page."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if current_staff() is None:
            return redirect_to_sign_in()
        return view(*args, **kwargs)

    return wrapper


def redirect_to_sign_in():
    # Only a page can be returned to: a POST's URL would answer the returning GET with 405.
    target = request.full_path.rstrip("?") if request.method in ("GET", "HEAD") else None
    return redirect(url_for("admin.sign_in", next=safe_next(target)))


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path of the operator's own pages, else None.

    Anything else (another host, ``//host``, a backslash that some browsers read as a slash, a
    scheme, control characters) would make the sign-in form an open redirect.
    """
    if not target or "\\" in target or any(ord(c) < 32 for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return None
    if parts.path != "/admin" and not parts.path.startswith("/admin/"):
        return None
    return target


# Signing in and out ------------------------------------------------------------------------
def authenticate(email: str, password: str, address: str) -> StaffUser:
    """The active staff user with this email and password.

    :raise Throttled: too many failures lately; the password was not even checked.
    :raise SignInRefused: anything else wrong, without saying what.
    """
    email = normalise_email(email)
    if _throttled(email, address):
        raise Throttled()
    user = db.session.execute(
        select(StaffUser).where(StaffUser.email == email)
    ).scalar_one_or_none()
    if user is None:
        # Hash anyway, so that the answer for an unknown email takes as long as for a known one.
        check_password_hash(_decoy_hash(), password)
    if user is None or not (user.check_password(password) and user.active):
        _count_failure(email, address)
        raise SignInRefused()
    return user


def start_session(user: StaffUser) -> None:
    session.clear()
    session[SESSION_KEY] = {
        "id": user.id,
        "stamp": user.session_stamp,
        "at": int(time.time()),
        "sid": sessions.new_sid(),
    }
    user.last_login_at = now_utc()
    db.session.commit()
    g.staff = user


def end_session() -> None:
    data = session.get(SESSION_KEY)
    if isinstance(data, dict) and isinstance(data.get("sid"), str):
        sessions.end(data["sid"])
    session.clear()
    g.staff = None


@functools.cache
def _decoy_hash() -> str:
    return generate_password_hash(secrets.token_urlsafe(16))


# Throttle ----------------------------------------------------------------------------------
def _keys(email: str, address: str) -> list[tuple[str, int]]:
    # The email is hashed: keys have a bounded length, and the table holds no addresses typed.
    digest = hashlib.sha256(email.encode()).hexdigest()[:24]
    return [
        (f"admin-sign-in:{digest}:{address}", setting("ADMIN_SIGN_IN_LIMIT")),
        (f"admin-sign-in-ip:{address}", setting("ADMIN_SIGN_IN_IP_LIMIT")),
        # Per account, whatever the address: guessing one password from many machines.
        (f"admin-sign-in-account:{digest}", setting("ADMIN_SIGN_IN_ACCOUNT_LIMIT")),
    ]


def _throttled(email: str, address: str) -> bool:
    # Looked at before the password is checked: once over the limit, even the right password
    # is refused until the window passes, or guessing would simply go on.
    per = setting("ADMIN_SIGN_IN_WINDOW")
    return any(count(key, per) >= limit for key, limit in _keys(email, address))


def _count_failure(email: str, address: str) -> None:
    per = setting("ADMIN_SIGN_IN_WINDOW")
    for key, limit in _keys(email, address):
        hit(key, limit, per)


# What a signed-in account may do -----------------------------------------------------------
MONEY_REFUSED = (
    "Your account may not capture, void or refund payments: ask an owner for the payments "
    "permission. Nothing was sent to the gateway."
)


def money_permission_required(view):
    """Capture, void and refund: refused, before any gateway call, without the permission."""

    @functools.wraps(view)
    def wrapper(number: str, attempt_id: int, **kwargs):
        if not signed_in_staff().may_move_money:
            flash(MONEY_REFUSED, "error")
            return redirect(
                url_for("admin.order", number=number, _anchor=f"payment-{attempt_id}"), code=303
            )
        return view(number, attempt_id, **kwargs)

    return wrapper


def owner_required(view):
    """Pages only an owner may use (the staff accounts): 403 for everyone else."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not signed_in_staff().is_owner:
            return render_error(403, "Only an owner of the shop may manage staff accounts.")
        return view(*args, **kwargs)

    return wrapper


# The second step of signing in (a one-time code) ---------------------------------------------
PENDING_KEY = "staff_pending"
PENDING_SECONDS = 300


def start_second_step(user: StaffUser) -> None:
    """The password was right and the account has a second factor: wait for its code."""
    session.clear()
    session[PENDING_KEY] = {"id": user.id, "stamp": user.session_stamp, "at": int(time.time())}


def pending_staff() -> StaffUser | None:
    """The account whose password was just given and whose code is awaited, or None."""
    data = session.get(PENDING_KEY)
    if not isinstance(data, dict) or not isinstance(data.get("at"), int):
        return None
    if time.time() - data["at"] > PENDING_SECONDS or not isinstance(data.get("id"), int):
        return None
    user = db.session.get(StaffUser, data["id"])
    if user is None or not user.active or not user.totp_enabled:
        return None
    return user if data.get("stamp") == user.session_stamp else None


def finish_second_step(user: StaffUser, code: str, address: str) -> None:
    """Open the session if ``code`` is the account's current one-time code.

    :raise Throttled: too many wrong codes lately for this account.
    :raise SignInRefused: the code is wrong or was used already.
    """
    key = f"admin-code:{user.id}"
    per, limit = setting("ADMIN_SIGN_IN_WINDOW"), setting("ADMIN_SIGN_IN_LIMIT")
    if count(key, per) >= limit:
        raise Throttled()
    if not twofactor.accept(user, code):
        hit(key, limit, per)
        db.session.commit()
        raise SignInRefused()
    start_session(user)  # commits the code's time step with the sign-in
