"""The processes and databases a benchmark run needs, all on 127.0.0.1 and all temporary.

- the shop: gunicorn with the Procfile's ``web`` settings (worker class, workers, threads,
  timeout, access log), bound to a free loopback port;
- the sandbox gateway: a gunicorn of its own, so that the gateway's cost (and its deliberate
  delays) never takes one of the shop's threads except as a waiting HTTP call, as a real
  gateway would;
- the bare Flask app (``bench.bare``), under the same settings as the shop;
- a database per run: an SQLite file in a temporary folder, or a PostgreSQL database created
  next to ``STOREFRONT_BENCH_DATABASE_URL`` and dropped afterwards.

Every process runs in its own process group and is stopped (the whole group) when the
``Processes`` context ends, however it ends: normally, by an exception or by Ctrl-C.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
SANDBOX_THREADS = 64  # enough for every order placement of a run to wait on it at once
# The sandbox's control API (faults, state) answers only this token, made afresh for each run.
SANDBOX_CONTROL_TOKEN = "bench-" + secrets.token_hex(16)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def procfile_web(app_spec: str, port: int, environ: dict | None = None) -> list[str]:
    """The Procfile's ``web`` command for ``app_spec``, bound to 127.0.0.1:``port``.

    ``${NAME:-default}`` is expanded as the shell would (from ``environ``), so a run honours
    ``WEB_CONCURRENCY`` just as a deployment does.
    """
    environ = os.environ if environ is None else environ
    line = next(
        raw.split(":", 1)[1]
        for raw in (ROOT / "Procfile").read_text().splitlines()
        if raw.startswith("web:")
    )

    def expand(match: re.Match) -> str:
        return environ.get(match["name"]) or match["default"] or ""

    line = re.sub(r"\$\{(?P<name>\w+)(?::-(?P<default>[^}]*))?\}", expand, line)
    args = shlex.split(line)
    if args[0] != "gunicorn":
        raise RuntimeError(f"the Procfile's web command is not gunicorn: {line}")
    args = [app_spec if arg == "app:app" else arg for arg in args[1:]]
    if "--bind" in args:
        args[args.index("--bind") + 1] = f"127.0.0.1:{port}"
    else:
        args += ["--bind", f"127.0.0.1:{port}"]
    return [sys.executable, "-m", "gunicorn", *args]


def gunicorn_settings(command: list[str]) -> str:
    """The settings of a gunicorn command line that matter for throughput, for the report."""
    shown = []
    for name in ("--worker-class", "--workers", "--threads", "--timeout"):
        if name in command:
            shown.append(f"{name} {command[command.index(name) + 1]}")
    return " ".join(shown)


def gunicorn_threads(command: list[str]) -> int:
    """How many requests a gthread gunicorn serves at once: workers × threads."""

    def value(name: str, default: int) -> int:
        return int(command[command.index(name) + 1]) if name in command else default

    return value("--workers", 1) * value("--threads", 1)


# One line of ``ss -tnpH state established``: queues, local and peer address, processes.
_SOCKET = re.compile(r"\S+:(?P<local>\d+)\s+\S+:(?P<peer>\d+)\s+users:\((?P<users>.*)\)")


class Server:
    """One gunicorn master and its workers, in a process group of their own."""

    def __init__(self, name: str, command: list[str], env: dict, log: Path, ready_path: str):
        self.name = name
        self.command = command
        self.env = env
        self.log = log
        self.ready_path = ready_path
        self.port = int(command[command.index("--bind") + 1].rsplit(":", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Server:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                requests.get(self.url + self.ready_path, timeout=2)
                return self
            except requests.RequestException:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not start:\n{self.log.read_text()[-3000:]}")

    def workers(self) -> list[int]:
        """The pids of the master's worker processes (Linux; none where it cannot tell)."""
        if self.proc is None:
            return []
        try:
            found = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return sorted(int(pid) for pid in found.split())

    def spread(self, client: int) -> list[int] | None:
        """How many of process ``client``'s connections each worker serves, read from
        ``ss``; None where that cannot be told."""
        workers = self.workers()
        if not workers or not shutil.which("ss"):
            return None
        sockets = subprocess.run(
            ["ss", "-tnpH", "state", "established"], capture_output=True, text=True, timeout=10
        ).stdout
        served: dict[int, int] = {}  # the client's port → the worker serving it
        ours: list[int] = []  # the client's ports connected to this server
        for match in _SOCKET.finditer(sockets):
            local, peer = int(match["local"]), int(match["peer"])
            pids = {int(pid) for pid in re.findall(r"pid=(\d+)", match["users"])}
            if local == self.port and pids & set(workers):
                served[peer] = min(pids & set(workers))
            elif peer == self.port and client in pids:
                ours.append(local)
        counts = Counter(served.get(port) for port in ours)
        return [counts.get(pid, 0) for pid in workers]

    def stop(self) -> None:
        """SIGINT to the group (gunicorn's quick shutdown), SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig in (signal.SIGINT, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
                return
            except subprocess.TimeoutExpired:
                continue


class Processes:
    """``with Processes() as processes: processes.start(server)`` — all stopped at the end."""

    def __init__(self):
        self.servers: list[Server] = []

    def __enter__(self) -> Processes:
        # A SIGTERM (a CI timeout, ``kill``) unwinds like Ctrl-C, so the servers are stopped.
        self._previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        return self

    def __exit__(self, *exc) -> None:
        for server in reversed(self.servers):
            server.stop()
        signal.signal(signal.SIGTERM, self._previous)

    def start(self, server: Server) -> Server:
        self.servers.append(server)
        return server.start()

    def stop(self, server: Server) -> None:
        server.stop()
        self.servers.remove(server)


def _raise_keyboard_interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


# The shop's and the sandbox's environments -----------------------------------------------------
def shop_env(database_url: str, instance: Path, public_url: str, sandbox_url: str) -> dict:
    """The shop's ``STOREFRONT_*`` settings for a run; the caller's own ones are dropped.

    The rate limiter is switched off: every request of a benchmark comes from 127.0.0.1, and
    the limits (20 orders, 600 callbacks a minute per address) are not configurable.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOREFRONT_")}
    env.update(
        {
            f"STOREFRONT_{key}": value
            for key, value in shop_settings(database_url, instance, public_url, sandbox_url).items()
        }
    )
    return env


def shop_settings(database_url: str, instance: Path, public_url: str, sandbox_url: str) -> dict:
    return {
        "SECRET_KEY": "bench-" + secrets.token_hex(24),
        "DATABASE_URL": database_url,
        "INSTANCE_PATH": str(instance),
        "PUBLIC_URL": public_url,
        "SANDBOX": "off",
        "SANDBOX_URL": sandbox_url,
        "RBS_URL": f"{sandbox_url}/rbs/payment/rest/",
        "GATEWAYS": "rbs",
        "RATELIMIT_ENABLED": "off",
    }


def sandbox_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "sandbox:create_app()",
        "--worker-class",
        "gthread",
        "--workers",
        "1",
        "--threads",
        str(SANDBOX_THREADS),
        "--timeout",
        "60",
        "--bind",
        f"127.0.0.1:{port}",
    ]


def sandbox_env(folder: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    env["SANDBOX_DB"] = str(folder / "sandbox.db")
    env["SANDBOX_CONTROL_TOKEN"] = SANDBOX_CONTROL_TOKEN
    return env


def migrate(env: dict, log: Path) -> None:
    """``flask --app app db upgrade``: the schema exactly as a deployment gets it."""
    with log.open("ab") as out:
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=True,
            timeout=120,
        )


# PostgreSQL ------------------------------------------------------------------------------------
def plain_postgres_url(url: str) -> str:
    """``postgres://`` or ``postgresql+psycopg://`` as the ``postgresql://`` psycopg takes."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


@contextmanager
def postgres_database(admin_url: str):
    """A fresh database next to ``admin_url``'s (whose role may CREATE DATABASE), dropped after."""
    import psycopg

    plain = plain_postgres_url(admin_url)
    name = "sf_bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(plain, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(plain)._replace(path="/" + name))
    finally:
        with psycopg.connect(plain, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
