"""A deployment as production runs it: gunicorn processes (from the Procfile's settings)
sharing one database, talking to the sandbox over HTTP; and a small SMTP server tests control.
"""

from __future__ import annotations

import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
SECRET = "deployment-test-secret-" + "x" * 32
CALLBACK_KEY = "sandbox-callback-key"  # the sandbox's demo key, as the shop is configured


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ShopProcess:
    """One gunicorn master with its workers, in its own process group (so it can be killed)."""

    def __init__(self, env: dict, port: int, log: Path, workers: int = 2):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.env = env
        self.workers = workers
        self.proc: subprocess.Popen | None = None

    def start(self) -> ShopProcess:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "app:app",
            "--worker-class",
            "gthread",
            "--workers",
            str(self.workers),
            "--threads",
            "32",
            "--timeout",
            "30",
            "--graceful-timeout",
            "5",
            "--bind",
            f"127.0.0.1:{self.port}",
        ]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - our own gunicorn, fixed arguments
                command,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn on {self.url} did not start:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group: no clean-up, as a crash would leave it."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


class Deployment:
    """Two web processes behind one public URL (the first's), one database, one mail folder."""

    def __init__(
        self, database_url: str, sandbox_url: str, folder: Path, workers: int = 2, **settings
    ):
        self.database_url = database_url
        self.workers = workers
        self.sandbox_url = sandbox_url
        self.folder = folder
        self.ports = [free_port(), free_port()]
        self.public_url = f"http://127.0.0.1:{self.ports[0]}"
        self.settings = settings
        self.processes: list[ShopProcess] = []

    @property
    def urls(self) -> list[str]:
        return [p.url for p in self.processes]

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STOREFRONT_")}
        values = {
            "SECRET_KEY": SECRET,
            "DATABASE_URL": self.database_url,
            "PUBLIC_URL": self.public_url,
            "INSTANCE_PATH": str(self.folder),
            "SANDBOX": "off",
            "RBS_URL": f"{self.sandbox_url}/rbs/payment/rest/",
            "ALTAPAY_URL": f"{self.sandbox_url}/altapay/merchant/API/",
            "INTERPAY_URL": f"{self.sandbox_url}/interpay/svra/ {self.sandbox_url}/interpay/svrb/",
            "GATEWAY_CONNECT_TIMEOUT": "2",
            "GATEWAY_READ_TIMEOUT": "3",
            "RATELIMIT_ENABLED": "off",
            "STATUS_RECHECK_SECONDS": "0",
            **{k: str(v) for k, v in self.settings.items()},
        }
        env.update({f"STOREFRONT_{k}": v for k, v in values.items()})
        return env

    def start(self) -> Deployment:
        env = self.env()
        for i, port in enumerate(self.ports):
            log = self.folder / f"gunicorn-{i}.log"
            self.processes.append(ShopProcess(env, port, log, self.workers).start())
        return self

    def restart(self, index: int) -> None:
        process = self.processes[index]
        process.stop()
        self.processes[index] = ShopProcess(
            self.env(), process.port, process.log, self.workers
        ).start()

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def create_database(admin_url: str) -> str:
    """A fresh, empty PostgreSQL database next to ``admin_url``'s; returns its URL."""
    import psycopg

    name = "sf_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop_database(admin_url: str, url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class SmtpServer:
    """Just enough SMTP to receive mail, with a switch that makes it stop answering DATA."""

    def __init__(self):
        self.messages: list[bytes] = []
        self.frozen = threading.Event()
        self.arrived = threading.Event()  # a client reached DATA while frozen
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                self.wfile.write(b"220 test SMTP\r\n")
                while line := self.rfile.readline():
                    verb = line.split(b" ")[0].strip().upper()
                    if verb in (b"EHLO", b"HELO"):
                        self.wfile.write(b"250 test\r\n")
                    elif verb == b"DATA":
                        if outer.frozen.is_set():
                            outer.arrived.set()
                            while outer.frozen.is_set():  # hangs until the client is killed
                                time.sleep(0.05)
                            return
                        self.wfile.write(b"354 go ahead\r\n")
                        body = []
                        while (data := self.rfile.readline()) not in (b".\r\n", b""):
                            # A line of the message that starts with a dot was sent with a
                            # second one in front (RFC 5321 §4.5.2, "transparency").
                            body.append(data[1:] if data.startswith(b".") else data)
                        outer.messages.append(b"".join(body))
                        self.wfile.write(b"250 queued\r\n")
                    elif verb == b"QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    else:
                        self.wfile.write(b"250 ok\r\n")

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"smtp://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @contextmanager
    def running(self):
        self.thread.start()
        try:
            yield self
        finally:
            self.frozen.clear()
            self.server.shutdown()
            self.server.server_close()


def database_url(kind: str, folder: Path) -> tuple[str, str | None]:
    """A fresh database for a test: SQLite in ``folder``, or PostgreSQL next to the URL that
    ``make test`` provides. Returns its URL and, for PostgreSQL, the URL to drop it through."""
    if kind == "sqlite":
        return f"sqlite:///{folder / 'shop.db'}", None
    admin = os.environ.get("STOREFRONT_TEST_POSTGRES_URL")
    if not admin:
        pytest.fail(
            "STOREFRONT_TEST_POSTGRES_URL is not set: run `make test`, which provides "
            "PostgreSQL (tests/services/ensure-postgres.sh)"
        )
    return create_database(admin), admin


# What a test does with a running deployment ---------------------------------------------------
def new_product(deployment, **values) -> tuple[int, str]:
    from tests.factories import make_product

    with deployment.app.app_context():
        product = make_product(**values)
        return product.id, product.slug


def order_of(deployment, attempt_id: int):
    from storefront.extensions import db
    from storefront.payments.models import PaymentAttempt

    with deployment.app.app_context():
        attempt = db.session.get(PaymentAttempt, attempt_id)
        order = attempt.order
        _ = (order.lines, order.events, order.attempts)
        db.session.expunge_all()
        return order


def latest_attempt(deployment):
    from sqlalchemy import select

    from storefront.extensions import db
    from storefront.payments.models import PaymentAttempt

    with deployment.app.app_context():
        attempt = (
            db.session.execute(select(PaymentAttempt).order_by(PaymentAttempt.id.desc()))
            .scalars()
            .first()
        )
        db.session.expunge(attempt)
        return attempt
