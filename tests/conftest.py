"""Fixtures: the sandbox gateway on a loopback port, and helpers to drive it."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import requests

from sandbox import create_app as create_sandbox
from tests.servers import LiveServer, serving

# The secret the sandbox's control API asks for (X-Sandbox-Control); only the tests hold it.
CONTROL_TOKEN = "test-control-" + secrets.token_hex(16)


@pytest.fixture(scope="session")
def sandbox_server():
    """The sandbox gateway, served over real HTTP on 127.0.0.1 for the whole session."""
    app = create_sandbox({"SANDBOX_DB": ":memory:", "SANDBOX_CONTROL_TOKEN": CONTROL_TOKEN})
    with serving(app) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server):
    """A clean sandbox for one test: state, faults, clock and settings reset."""
    control = SandboxControl(sandbox_server.url)
    control.reset()
    yield control
    control.reset()


class SandboxControl:
    """The sandbox's control API, as a test sees it (every call carries the control token)."""

    def __init__(self, url: str, token: str = CONTROL_TOKEN):
        self.url = url
        self.http = requests.Session()
        self.http.headers["X-Sandbox-Control"] = token

    def reset(self) -> None:
        self.http.post(f"{self.url}/__reset", timeout=5).raise_for_status()

    def arm(self, gateway: str, op: str, fault: str, count: int = 1, **params) -> None:
        body = {"gateway": gateway, "op": op, "fault": fault, "count": count, "params": params}
        self.http.post(f"{self.url}/__control/faults", json=body, timeout=5).raise_for_status()

    def disarm(self) -> None:
        """Take back every fault not yet taken."""
        self.http.delete(f"{self.url}/__control/faults", timeout=5).raise_for_status()

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


@pytest.fixture
def postgres_database():
    """A fresh, empty PostgreSQL database for one test (``make test`` provides the server)."""
    import os

    from tests.deployment import create_database, drop_database

    admin = os.environ.get("STOREFRONT_TEST_POSTGRES_URL")
    if not admin:
        pytest.fail("STOREFRONT_TEST_POSTGRES_URL is not set: run `make test`")
    url = create_database(admin)
    yield url
    drop_database(admin, url)


@pytest.fixture
def app(tmp_path):
    """The shop on a fresh SQLite database of its own, pointed at no live gateway."""
    from tests.factories import make_app

    yield make_app(tmp_path)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def shop_config(tmp_path, public_url: str, sandbox_url: str, **overrides) -> dict:
    """A shop on its own SQLite file, talking to the sandbox at ``sandbox_url`` over HTTP with
    the sandbox's demo credentials, exactly as it would talk to a real gateway."""
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-" + "x" * 32,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'shop.db'}",
        "PUBLIC_URL": public_url,
        "SANDBOX": False,
        "SANDBOX_URL": sandbox_url,
        "RBS_URL": f"{sandbox_url}/rbs/payment/rest/",
        "ALTAPAY_URL": f"{sandbox_url}/altapay/merchant/API/",
        "INTERPAY_URL": f"{sandbox_url}/interpay/svra/ {sandbox_url}/interpay/svrb/",
        "GATEWAYS": "rbs",
        "GATEWAY_CONNECT_TIMEOUT": 2.0,
        "GATEWAY_READ_TIMEOUT": 5.0,
        "RATELIMIT_ENABLED": False,
        "STATUS_RECHECK_SECONDS": 0,
        **overrides,
    }


@pytest.fixture
def make_shop(tmp_path, sandbox):
    """Start a shop on a loopback port against the live sandbox: ``make_shop(**config)``."""
    from storefront import create_app
    from storefront.extensions import db

    servers = []

    def start(**overrides) -> LiveShop:
        server = LiveServer()
        try:
            app = create_app(shop_config(tmp_path, server.url, sandbox.url, **overrides))
        except BaseException:
            server.close()  # bound but never started: release the port
            raise
        with app.app_context():
            db.create_all()
        server.app = app
        servers.append(server.start())
        return LiveShop(app, server.url)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def shop(make_shop):
    """The shop with the BPC/RBS gateway, one-phase."""
    return make_shop()


class LiveShop:
    def __init__(self, app, url: str):
        self.app = app
        self.url = url

    def db(self):
        """``with shop.db() as session:`` — the shop's database, as the shop sees it."""
        from contextlib import contextmanager

        from storefront.extensions import db

        @contextmanager
        def scope():
            with self.app.app_context():
                yield db.session
                db.session.remove()

        return scope()


ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-background-networking",  # the network is closed: no calls home
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium, driven by Playwright (which never downloads a browser of its own)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, request):
    """A fresh browser tab with JavaScript OFF: the whole shop must work without it.

    ``page.shot(name)`` keeps a screenshot in test-artifacts/<test>/ for people to look at.
    """
    context = chromium.new_context(
        java_script_enabled=False, viewport={"width": 1200, "height": 900}
    )
    tab = context.new_page()
    folder = ARTIFACTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    count = iter(range(1, 100))

    def shot(name: str) -> Path:
        path = folder / f"{next(count):02d}-{name}.png"
        tab.screenshot(path=str(path), full_page=True)
        return path

    tab.shot = shot
    yield tab
    context.close()


# The scenario × gateway table ---------------------------------------------------------------
# Tests marked ``@pytest.mark.scenario("what is tried → what must hold", gateway="rbs")`` are
# collected into a Markdown table (``--scenarios-report=PATH``), written by the suite itself.


def pytest_addoption(parser):
    parser.addoption(
        "--scenarios-report",
        default=None,
        help="write the table of scenario × gateway × database results to PATH",
    )


_SCENARIOS: dict[str, dict] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("scenario")
    if marker is None:
        return
    params = getattr(item, "callspec", None)
    params = params.params if params else {}
    row = _SCENARIOS.setdefault(
        item.nodeid,
        {
            "scenario": marker.args[0],
            "gateway": params.get("gateway", marker.kwargs.get("gateway", "rbs")),
            "database": params.get("deployment", params.get("database", "sqlite")),
            "status": "passed",
        },
    )
    if report.failed:
        row["status"] = "failed"
    elif report.skipped:
        row["status"] = "skipped"


def pytest_sessionfinish(session, exitstatus):
    path = session.config.getoption("--scenarios-report")
    if not path or not _SCENARIOS:
        return
    import datetime

    rows = sorted(_SCENARIOS.values(), key=lambda r: (r["scenario"], r["gateway"], r["database"]))
    columns = sorted({(r["gateway"], r["database"]) for r in rows})
    table: dict[str, dict] = {}
    for r in rows:
        table.setdefault(r["scenario"], {})[(r["gateway"], r["database"])] = r["status"]
    mark = {"passed": "✅ pass", "failed": "❌ FAIL", "skipped": "⚠️ skipped"}
    lines = [
        "# Payment scenarios: what the test suite proves",
        "",
        f"Written by the test suite itself (`make test`) on "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC. Each cell is one test run "
        "over real HTTP against the sandbox gateway; on PostgreSQL the shop runs as two gunicorn "
        "server processes against one database.",
        "",
        "| Scenario | " + " | ".join(f"{g} · {d}" for g, d in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for scenario, cells in table.items():
        lines.append(
            f"| {scenario} | " + " | ".join(mark.get(cells.get(c, ""), "—") for c in columns) + " |"
        )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
