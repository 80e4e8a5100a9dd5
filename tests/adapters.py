"""Helpers for the adapter tests: settings as the shop loads them, what a journal holds, and a
gateway on loopback that answers each API method with a canned body."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, request

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


def records(journal: Journal) -> list[tuple[str, str, str]]:
    """A journal's entries as (kind, summary, detail), in the order they were recorded."""
    return [(str(entry.kind), entry.summary, entry.detail) for entry in journal.entries]


class CannedGateway:
    """A loopback HTTP server answering each POST to ``<path>/<method>`` with the body set for
    that method (404 until one is), recording each call as (method, form, Authorization)."""

    def __init__(self, name: str, path: str, content_type: str):
        self.answers: dict[str, tuple[int, str]] = {}
        self.calls: list[tuple[str, dict, str | None]] = []
        self.content_type = content_type
        self.app = Flask(name)
        self.app.add_url_rule(f"{path}/<method>", view_func=self.answer, methods=["POST"])

    def answer(self, method):
        self.calls.append((method, request.form.to_dict(), request.headers.get("Authorization")))
        status, body = self.answers.get(method, (404, "not found"))
        return body, status, {"Content-Type": self.content_type}

    def set(self, method: str, body, status: int = 200):
        """Answer ``method`` with ``body`` (a text, or a value sent as JSON) and ``status``."""
        self.answers[method] = (status, body if isinstance(body, str) else json.dumps(body))

    def methods(self) -> list[str]:
        return [method for method, _, _ in self.calls]
