"""Fixtures: the sandbox gateway on a loopback port, and helpers to drive it."""

from __future__ import annotations

import pytest
import requests

from sandbox import create_app as create_sandbox
from tests.servers import serving


@pytest.fixture(scope="session")
def sandbox_server():
    """The sandbox gateway, served over real HTTP on 127.0.0.1 for the whole session."""
    with serving(create_sandbox({"SANDBOX_DB": ":memory:"})) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server):
    """A clean sandbox for one test: state, faults, clock and settings reset."""
    control = SandboxControl(sandbox_server.url)
    control.reset()
    yield control
    control.reset()


class SandboxControl:
    """The sandbox's control API, as a test sees it."""

    def __init__(self, url: str):
        self.url = url
        self.http = requests.Session()

    def reset(self) -> None:
        self.http.post(f"{self.url}/__reset", timeout=5).raise_for_status()

    def arm(self, gateway: str, op: str, fault: str, count: int = 1, **params) -> None:
        body = {"gateway": gateway, "op": op, "fault": fault, "count": count, "params": params}
        self.http.post(f"{self.url}/__control/faults", json=body, timeout=5).raise_for_status()

    def advance(self, seconds: float) -> None:
        self.http.post(f"{self.url}/__control/clock", json={"advance": seconds}, timeout=30)

    def settings(self, **values) -> None:
        self.http.post(f"{self.url}/__control/settings", json=values, timeout=5).raise_for_status()

    def deliver(self, **selector) -> list[str]:
        r = self.http.post(f"{self.url}/__control/deliver", json=selector, timeout=5)
        r.raise_for_status()
        return r.json()["sent"]

    def state(self) -> dict:
        r = self.http.get(f"{self.url}/__state", timeout=5)
        r.raise_for_status()
        return r.json()
