"""What the staff and account pages do: each change recorded with who made it."""

from __future__ import annotations

from sqlalchemy import func, select

from storefront.admin import audit, twofactor
from storefront.admin.models import Role, StaffUser, normalise_email
from storefront.extensions import db


class StaffRefused(ValueError):
    """The change would leave the shop without an owner, or the email is taken."""


def staff() -> list[StaffUser]:
    return list(db.session.execute(select(StaffUser).order_by(StaffUser.email)).scalars())


def _other_active_owners(user: StaffUser) -> int:
    return db.session.execute(
        select(func.count())
        .select_from(StaffUser)
        .where(StaffUser.role == Role.OWNER, StaffUser.active.is_(True), StaffUser.id != user.id)
    ).scalar_one()


def create(email: str, name: str, role: str, can_refund: bool, password: str, actor: str):
    """A new account with the password the owner gives it (to hand over in person).

    :raise StaffRefused: the email has an account already.
    """
    email = normalise_email(email)
    if db.session.execute(select(StaffUser.id).where(StaffUser.email == email)).first():
        raise StaffRefused(f"{email} has an account already.")
    user = StaffUser(email=email, name=name.strip(), role=Role(role), can_refund=can_refund)
    user.set_password(password)
    db.session.add(user)
    audit.record(
        actor, "staff created", email, f"role {role}, payments {'yes' if can_refund else 'no'}"
    )
    db.session.commit()
    return user


def update(user: StaffUser, name: str, role: str, can_refund: bool, actor: str) -> None:
    """:raise StaffRefused: the last active owner would stop being one."""
    if user.is_owner and role != Role.OWNER and user.active and not _other_active_owners(user):
        raise StaffRefused("The shop needs an owner: make someone else an owner first.")
    user.name, user.role, user.can_refund = name.strip(), Role(role), can_refund
    audit.record(
        actor, "staff edited", user.email, f"role {role}, payments {'yes' if can_refund else 'no'}"
    )
    db.session.commit()


def set_active(user: StaffUser, active: bool, actor: str) -> None:
    """Deactivating ends the account's sessions on their next request (see auth).

    :raise StaffRefused: the last active owner, or oneself.
    """
    if not active and user.email == actor:
        raise StaffRefused("You cannot deactivate your own account.")
    if not active and user.is_owner and not _other_active_owners(user):
        raise StaffRefused("The shop needs an active owner: this is the last one.")
    user.active = active
    if not active:
        user.session_epoch += 1  # its sessions stay ended, even once it is reactivated
    audit.record(actor, "staff reactivated" if active else "staff deactivated", user.email)
    db.session.commit()


def set_password(user: StaffUser, password: str, actor: str) -> None:
    """A new password; every session opened with the old one ends (the session stamp)."""
    user.set_password(password)
    audit.record(actor, "password reset" if actor != user.email else "password changed", user.email)
    db.session.commit()


def reset_second_factor(user: StaffUser, actor: str) -> None:
    """Turn the account's one-time codes off (a lost phone); it signs in with a password."""
    user.totp_secret, user.totp_enabled, user.totp_last_step = None, False, None
    audit.record(actor, "two-step sign-in reset", user.email)
    db.session.commit()


def begin_second_factor(user: StaffUser) -> None:
    """A new secret, not yet in use: the first code from the app turns it on."""
    user.totp_secret, user.totp_enabled, user.totp_last_step = twofactor.new_secret(), False, None
    db.session.commit()


def confirm_second_factor(user: StaffUser, code: str) -> bool:
    if user.totp_enabled or not twofactor.accept(user, code):
        return False
    user.totp_enabled = True
    audit.record(user.email, "two-step sign-in on", user.email)
    db.session.commit()
    return True
