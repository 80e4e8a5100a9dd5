"""What the figures were measured on: CPU, cores, memory, versions, and whether the machine had
other work to do (a test suite running at the same time makes every figure worse)."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
import threading
import time
from importlib.metadata import version
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def postgres_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url, connect_timeout=10) as conn:
        return conn.execute("SHOW server_version").fetchone()[0].split()[0]


def pytest_running() -> bool | None:
    """Whether a pytest process is running (None: cannot tell, no ``pgrep``)."""
    try:
        found = subprocess.run(["pgrep", "-f", "pytest"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return bool(found.stdout.strip())


class Watch:
    """Looks every few seconds, for the whole run, whether a test run shares the machine."""

    def __init__(self, every: float = 5.0):
        self.every = every
        self.seen: set[bool | None] = set()
        self.busy: list[str] = []  # when a pytest was seen running (UTC)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._look, daemon=True)
        self._load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _look(self) -> None:
        while True:
            running = pytest_running()
            self.seen.add(running)
            if running:
                self.busy.append(time.strftime("%H:%M:%S", time.gmtime()))
            if self._stop.wait(self.every):
                return

    def summary(self) -> str:
        if True in self.seen:
            found = (
                "**a pytest run shared the machine** (seen from "
                f"{self.busy[0]} to {self.busy[-1]} UTC)"
            )
        elif None in self.seen:
            found = "unknown (no pgrep)"
        else:
            found = f"no pytest seen during the run (checked every {self.every:g} s)"
        if self._load is not None:
            found += f"; load average {self._load:.2f} at the start"
        return found


def describe(load_tool: str, postgres_url: str | None, watch: Watch) -> list[tuple[str, str]]:
    rows = [
        ("CPU", _cpu_model()),
        ("Cores", str(os.cpu_count())),
        ("Memory", _memory()),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", sys.version.split()[0]),
        ("Flask / gunicorn", f"{version('flask')} / {version('gunicorn')}"),
        ("SQLite", sqlite3.sqlite_version),
    ]
    if postgres_url:
        rows.append(("PostgreSQL", postgres_version(postgres_url)))
    rows += [("Load tool", load_tool), ("Other work", watch.summary())]
    return rows
