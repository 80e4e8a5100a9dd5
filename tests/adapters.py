"""Helpers for the adapter tests: settings as the shop loads them, and what a journal holds."""

from __future__ import annotations

from typing import Any

from storefront.config import SETTINGS
from storefront.gateways.base import Journal


def settings(**overrides: Any) -> dict[str, Any]:
    """Every setting at its default, ``overrides`` parsed by their setting's type (as
    ``storefront.config`` parses the environment), for building one adapter."""
    values = {name: s.parse(s.default) for name, s in SETTINGS.items()}
    for name, value in overrides.items():
        values[name] = SETTINGS[name].parse(value) if name in SETTINGS else value
    values["INTERPAY_CURRENCY"] = values["INTERPAY_CURRENCY"] or values["CURRENCY"]
    return values


def journal_text(journal: Journal) -> str:
    """Everything a journal recorded, summaries and details, as one text to search."""
    return "\n".join(f"{entry.summary}\n{entry.detail}" for entry in journal.entries)
