"""``flask create-admin EMAIL`` and ``flask deactivate-admin EMAIL``: staff accounts.

There is no default account and no default password: the first operator is made here, with a
password typed twice at a hidden prompt, or piped in (``--password-stdin``) by a deploy script,
so that it never appears in the shell history or the process list.
"""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy import select

from storefront.admin.models import Role, StaffUser, normalise_email, password_problem
from storefront.extensions import db


def init_app(app: Flask) -> None:
    app.cli.add_command(create_admin)
    app.cli.add_command(deactivate_admin)


def _find(email: str) -> StaffUser | None:
    return db.session.execute(
        select(StaffUser).where(StaffUser.email == email)
    ).scalar_one_or_none()


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = click.prompt("Password", hide_input=True)
    repeated = click.prompt("Repeat the password", hide_input=True)
    if password != repeated:
        raise click.ClickException("The two passwords do not match. Nothing was changed.")
    return password


def _check_password(password: str, email: str) -> None:
    problem = password_problem(password, email)
    if problem:
        raise click.ClickException(f"{problem} Nothing was changed.")


@click.command("create-admin")
@click.argument("email")
@click.option("--name", default="", help="The name shown in the back office.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of prompting.",
)
@click.option(
    "--reset",
    is_flag=True,
    help="The account exists: set a new password and make it active again.",
)
@with_appcontext
def create_admin(email: str, name: str, password_stdin: bool, reset: bool) -> None:
    """Create an owner's account for the back office (/admin), or reset an account's password."""
    email = normalise_email(email)
    local, _, domain = email.partition("@")
    if not local or "." not in domain or len(email) > 254 or any(c.isspace() for c in email):
        raise click.ClickException(f"{email!r} is not an email address.")
    user = _find(email)
    if user is not None and not reset:
        raise click.ClickException(
            f"{email} already has an account. Use --reset to give it a new password."
        )
    if user is None and reset:
        raise click.ClickException(f"{email} has no account to reset.")
    password = _read_password(password_stdin)
    _check_password(password, email)
    if user is None:
        # The command makes the shop's first accounts: owners, who then manage the others.
        user = StaffUser(email=email, name=name.strip(), role=Role.OWNER, can_refund=True)
        db.session.add(user)
    elif name:
        user.name = name.strip()
    # A new password also ends every session opened with the old one (see the session stamp).
    user.set_password(password)
    user.active = True
    db.session.commit()
    click.echo(f"{'Reset' if reset else 'Created'} staff account {email}.")


@click.command("deactivate-admin")
@click.argument("email")
@with_appcontext
def deactivate_admin(email: str) -> None:
    """Stop a staff account from signing in; its open sessions end on their next request."""
    user = _find(normalise_email(email))
    if user is None:
        raise click.ClickException(f"{email} has no account.")
    user.active = False
    user.session_epoch += 1  # its sessions stay ended, even once it is reactivated
    db.session.commit()
    click.echo(f"Deactivated staff account {user.email}.")
