"""Commands: ``flask seed``, ``flask payments reconcile``."""

from __future__ import annotations

import time

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from storefront.extensions import db

payments_cli = AppGroup("payments", help="Payment maintenance.")


def init_app(app: Flask) -> None:
    app.cli.add_command(seed)
    app.cli.add_command(payments_cli)


@click.command("seed")
@click.option("--products", default=0, help="Extra generated products (for benchmarks).")
@with_appcontext
def seed(products: int) -> None:
    """Load the demo catalogue into an empty database (creating tables if there are none)."""
    from storefront.catalogue.seed import seed_demo_catalogue
    from storefront.checkout.seed import seed_delivery_methods

    db.create_all()
    created = seed_demo_catalogue(extra_products=products)
    click.echo(f"seeded {created} products" if created else "catalogue already present")
    if seed_delivery_methods():
        click.echo("seeded the delivery methods")


@payments_cli.command("reconcile")
@click.option("--older-than", default=60.0, help="Only attempts at least this many seconds old.")
@click.option(
    "--every", default=0.0, help="Loop, sleeping until the next check is due, at most N seconds."
)
def reconcile(older_than: float, every: float) -> None:
    """Ask the gateways about unfinished payments; expire orders past their payment window.

    Safe to run from cron or as a worker in any number of copies at once.
    """
    from storefront.payments.reconciler import reconcile as run
    from storefront.payments.reconciler import until_next

    while True:
        counts = run(older_than=older_than)
        click.echo(" ".join(f"{k}={v}" for k, v in counts.items()))
        if not every:
            return
        pause = until_next(older_than, every)  # until the next check is due, at most N
        db.session.remove()
        time.sleep(pause)
