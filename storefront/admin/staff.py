"""Staff accounts (an owner's pages), one's own account with its optional second factor, and
the second step of signing in.

An owner creates accounts with a password they hand over; the new member of staff changes it
on their account page. Deactivating an account or giving it a new password ends its sessions
on their next request (the session stamp, see :mod:`storefront.admin.auth`).
"""

from __future__ import annotations

from typing import cast

from flask import abort, flash, redirect, render_template, request, url_for

from storefront.admin import auth, twofactor
from storefront.admin import staff_service as service
from storefront.admin.forms import EmptyForm, required
from storefront.admin.models import StaffUser
from storefront.admin.staff_forms import (
    CodeForm,
    OwnPasswordForm,
    ResetPasswordForm,
    StaffEditForm,
    StaffForm,
)
from storefront.admin.views import bp
from storefront.extensions import db


def _me() -> StaffUser:
    return auth.signed_in_staff()


def _member_or_404(staff_id: int) -> StaffUser:
    return db.get_or_404(StaffUser, staff_id)


def _back(user: StaffUser):
    return redirect(url_for("admin.staff_member", staff_id=user.id), code=303)


# An owner's pages --------------------------------------------------------------------------
@bp.get("/staff")
@auth.owner_required
def staff():
    """Every staff account with its role, permissions and state. Owners only (else 403)."""
    return render_template("admin/staff.html", members=service.staff())


@bp.route("/staff/new", methods=("GET", "POST"))
@auth.owner_required
def new_staff():
    """Create an account with a password the owner gives it. Owners only (else 403)."""
    form = StaffForm()
    if form.validate_on_submit():
        try:
            user = service.create(
                form.email.data,
                form.name.data or "",
                form.role.data,
                form.can_refund.data,
                form.password.data,
                _me().email,
            )
        except service.StaffRefused as refused:
            form.email.errors.append(str(refused))
        else:
            flash(f"{user.email} can now sign in with the password you gave.")
            return _back(user)
    status = 422 if form.errors else 200
    return render_template("admin/staff_new.html", form=form), status


def _render_member(user: StaffUser, edit=None, password=None, status: int = 200):
    return render_template(
        "admin/staff_member.html",
        member=user,
        form=edit or StaffEditForm(obj=user, formdata=None),
        password_form=password or ResetPasswordForm(user.email, formdata=None),
        button_form=EmptyForm(formdata=None),
    ), status


@bp.route("/staff/<int:staff_id>", methods=("GET", "POST"))
@auth.owner_required
def staff_member(staff_id: int):
    """One account: its role and payments permission. :raise 404: no such account."""
    user = _member_or_404(staff_id)
    form = StaffEditForm(obj=user) if request.method == "POST" else None
    if form is not None and form.validate_on_submit():
        try:
            service.update(
                user, form.name.data or "", form.role.data, form.can_refund.data, _me().email
            )
        except service.StaffRefused as refused:
            db.session.rollback()
            # A validated field's errors are a list (types-WTForms says any sequence).
            cast(list[str], form.role.errors).append(str(refused))
        else:
            flash(f"{user.email} is saved.")
            return _back(user)
    return _render_member(user, edit=form, status=422 if form is not None else 200)


@bp.post("/staff/<int:staff_id>/deactivate", defaults={"change": "deactivate"})
@bp.post("/staff/<int:staff_id>/reactivate", defaults={"change": "reactivate"})
@auth.owner_required
def staff_active(staff_id: int, change: str):
    """Deactivate (its sessions end) or reactivate an account. :raise 404: no such account."""
    user = _member_or_404(staff_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        service.set_active(user, change == "reactivate", _me().email)
    except service.StaffRefused as refused:
        flash(str(refused), "error")
    else:
        done = "active again" if user.active else "deactivated: its sessions have ended"
        flash(f"{user.email} is {done}.")
    return _back(user)


@bp.post("/staff/<int:staff_id>/password")
@auth.owner_required
def staff_password(staff_id: int):
    """Give an account a new password; its sessions end. :raise 404: no such account."""
    user = _member_or_404(staff_id)
    form = ResetPasswordForm(user.email)
    if not form.validate_on_submit():
        return _render_member(user, password=form, status=422)
    service.set_password(user, required(form.password.data), _me().email)
    if user.id == _me().id:
        auth.start_session(user)
    flash(f"{user.email} has a new password; its other sessions have ended.")
    return _back(user)


@bp.post("/staff/<int:staff_id>/two-step")
@auth.owner_required
def staff_second_factor(staff_id: int):
    """Turn off an account's one-time codes (a lost phone). :raise 404: no such account."""
    user = _member_or_404(staff_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    service.reset_second_factor(user, _me().email)
    flash(
        f"{user.email} signs in with the password alone until it turns two-step sign-in on again."
    )
    return _back(user)


# One's own account -------------------------------------------------------------------------
def _render_account(password=None, code=None, status: int = 200):
    me = _me()
    # A secret made and not yet confirmed with a code: shown, for the authenticator app.
    pending = me.totp_secret if me.totp_secret and not me.totp_enabled else None
    return render_template(
        "admin/account.html",
        password_form=password or OwnPasswordForm(me.email, formdata=None),
        code_form=code or CodeForm(formdata=None),
        button_form=EmptyForm(formdata=None),
        secret=twofactor.grouped(pending) if pending else None,
        uri=twofactor.uri(me) if pending else None,
    ), status


@bp.get("/account")
def account():
    """The signed-in member's own account: their password and two-step sign-in."""
    return _render_account()


@bp.post("/account/password")
def account_password():
    """Change one's own password (the current one is asked); other sessions end."""
    me = _me()
    form = OwnPasswordForm(me.email)
    if form.validate_on_submit() and not me.check_password(form.current.data):
        form.current.errors.append("This is not your current password.")
    elif form.validate_on_submit():
        service.set_password(me, form.password.data, me.email)
        auth.start_session(me)
        flash("Your password is changed; your other sessions have ended.")
        return redirect(url_for("admin.account"), code=303)
    return _render_account(password=form, status=422)


@bp.post("/account/two-step")
def account_second_factor():
    """Make a new secret for an authenticator app; on once a code confirms it."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    service.begin_second_factor(_me())
    flash("Add the key below to your authenticator app, then type the code it shows.")
    return redirect(url_for("admin.account", _anchor="two-step"), code=303)


@bp.post("/account/two-step/confirm")
def account_second_factor_confirm():
    """Turn two-step sign-in on with a first code from the app."""
    form = CodeForm()
    if form.validate_on_submit() and service.confirm_second_factor(_me(), form.code.data):
        flash("Two-step sign-in is on: signing in will ask for a code from your app.")
        return redirect(url_for("admin.account"), code=303)
    if not form.errors:
        form.code.errors.append("This code is not the one your app shows now. Try the next one.")
    return _render_account(code=form, status=422)


# The second step of signing in -------------------------------------------------------------
@bp.route("/sign-in/code", methods=("GET", "POST"))
def sign_in_code():
    """After the password, the one-time code of an account with two-step sign-in.

    Answers 429 after repeated wrong codes.
    """
    if auth.current_staff() is not None:
        return redirect(url_for("admin.orders"))
    user = auth.pending_staff()
    if user is None:  # no password given lately: the first step first
        return auth.redirect_to_sign_in()
    form = CodeForm(next=request.args.get("next", ""))
    error, status = None, 200
    if form.validate_on_submit():
        try:
            auth.finish_second_step(user, form.code.data, request.remote_addr or "-")
        except auth.Throttled:
            error, status = "Too many wrong codes. Wait a few minutes, then try again.", 429
        except auth.SignInRefused:
            error, status = "This code is not right, or was used already.", 422
        else:
            flash(f"Signed in as {user.display_name}.")
            return redirect(auth.safe_next(form.next.data) or url_for("admin.orders"), code=303)
    return render_template("admin/sign_in_code.html", form=form, error=error), status
