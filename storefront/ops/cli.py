"""``flask ops check``: the readiness checks from a shell (the Procfile's release step)."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

ops_cli = AppGroup("ops", help="Operations: readiness.")


@ops_cli.command("check")
def check() -> None:
    """Run /readyz's checks; exit 1 if any fails."""
    from storefront.ops import health

    results = health.checks()
    for result in results:
        click.echo(f"{'ok ' if result.ok else 'FAIL'} {result.name}: {result.detail}")
    if not health.ready(results):
        sys.exit(1)
