"""Load for one URL at a fixed number of connections, for a fixed time: requests per second and
latency percentiles.

wrk (Debian's ``wrk`` package) is used where installed: it is written in C and takes little of
the CPU the servers need. Without it, ``bench.pyload`` does the same from a Python process of
its own (threads over keep-alive connections); it costs the servers more CPU, so its figures
are lower, and the report names the tool used.

Both keep every connection open for the whole run (HTTP keep-alive) and count as errors socket
errors, timeouts and answers of 400 or more.

A kept-alive connection stays with the gunicorn worker that accepted it, and which worker
accepts which connection is up to the kernel: now and then 14 of 16 connections land on one
worker, and the run measures one core instead of the server. So where the server can tell
(``Server.spread``), a run whose connections are spread more unevenly than 10 to 6 is started
again (at most ``SPREAD_TRIES`` times), and the spread is reported with the figures. Real
traffic does not need this: its connections come and go, and the worker that is less busy is
the one that accepts the next.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.servers import ROOT

REQUEST_TIMEOUT = 10  # seconds: a request slower than this counts as an error
SPREAD_TRIES = 10  # a split within 10/6 comes about one time in four to eight
# "wrk" where installed, else "python"; ``python -m bench --tool python`` forces the fallback.
TOOL = "wrk" if shutil.which("wrk") else "python"


@dataclass
class Stats:
    """One measurement. Latencies are in milliseconds."""

    requests: int
    seconds: float
    errors: int
    p50: float
    p95: float
    p99: float
    spread: str = ""  # the load's connections per server worker, e.g. "8/8"

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def percentile(sorted_values: list[float], pct: float) -> float:
    """The nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[int(rank) - 1]


def stats_from(latencies_ms: list[float], seconds: float, errors: int) -> Stats:
    ordered = sorted(latencies_ms)
    return Stats(
        requests=len(ordered),
        seconds=seconds,
        errors=errors,
        p50=percentile(ordered, 50),
        p95=percentile(ordered, 95),
        p99=percentile(ordered, 99),
    )


def use(tool: str) -> None:
    """Choose the load tool: "wrk", "python" or "auto" (wrk where installed)."""
    global TOOL
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"
    if tool == "wrk" and not shutil.which("wrk"):
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    TOOL = tool


def tool_name() -> str:
    """The load tool in use, with its version."""
    if TOOL == "wrk":
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).splitlines()[0].split(" Copyright")[0].strip()
    return f"bench.pyload (Python {sys.version.split()[0]}, a thread per connection)"


def run(
    url: str,
    seconds: float,
    connections: int,
    method: str = "GET",
    bodies: list[str] | None = None,
    headers: dict[str, str] | None = None,
    spread: Callable[[int], list[int] | None] | None = None,
) -> Stats:
    """Load ``url`` with ``connections`` connections for ``seconds``.

    With several ``bodies``, the requests take them in turn (each load thread from a
    different one), so that concurrent requests mostly carry different bodies. ``spread``
    (given the load process's pid) says how the connections are spread over the workers.
    """
    headers = dict(headers or {})
    bodies = list(bodies or [])
    start = _wrk if TOOL == "wrk" else _python
    for attempt in range(1, SPREAD_TRIES + 1):
        with start(url, seconds, connections, method, bodies, headers) as (proc, result):
            found = None
            if spread is not None:
                time.sleep(min(0.3, seconds / 4))  # every connection is open by then
                found = spread(proc.pid)
                if found and _uneven(found, connections) and attempt < SPREAD_TRIES:
                    proc.kill()
                    time.sleep(0.3)  # let the server finish what the killed run asked
                    continue
            out, err = proc.communicate(timeout=seconds + REQUEST_TIMEOUT + 30)
            stats = result(out, err, proc.returncode)
        stats.spread = "/".join(str(n) for n in found) if found else ""
        return stats
    raise AssertionError("unreachable")


def _uneven(found: list[int], connections: int) -> bool:
    return max(found) - min(found) > max(2, connections // 4)


@contextmanager
def _process(command: list[str]):
    """Run ``command``; it is killed if the block is left before it ends (Ctrl-C included)."""
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


# wrk ---------------------------------------------------------------------------------------------
# wrk prints only some percentiles by itself; this script makes it report what we need as JSON.
_WRK_SCRIPT = """
wrk.method = {method}
{headers}
{bodies}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH-RESULT {{\\"requests\\": %d, \\"duration_us\\": %d, \\"errors\\": %d, "
    .. "\\"p50\\": %d, \\"p95\\": %d, \\"p99\\": %d}}\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""
# Several bodies: each thread takes them in turn, starting from a different one.
_WRK_BODIES = """
local bodies = {{{bodies}}}
local threads = 0
setup = function(thread)
  thread:set("first", threads)
  threads = threads + 1
end
local turn = nil
request = function()
  turn = ((turn or first * 7) % #bodies) + 1
  return wrk.format(nil, nil, nil, bodies[turn])
end
"""


def _lua(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid Lua string literal for ASCII text


@contextmanager
def _wrk(url, seconds, connections, method, bodies, headers):
    script = _WRK_SCRIPT.format(
        method=_lua(method),
        bodies=(
            f"wrk.body = {_lua(bodies[0])}"
            if len(bodies) == 1
            else _WRK_BODIES.format(bodies=", ".join(_lua(body) for body in bodies))
            if bodies
            else ""
        ),
        headers="\n".join(f"wrk.headers[{_lua(k)}] = {_lua(v)}" for k, v in headers.items()),
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    command = [
        "wrk",
        "--threads",
        str(min(2, connections)),
        "--connections",
        str(connections),
        "--duration",
        f"{max(1, round(seconds))}s",
        "--timeout",
        f"{REQUEST_TIMEOUT}s",
        "--script",
        handle.name,
        url,
    ]

    def result(out: str, err: str, _code: int) -> Stats:
        line = next((x for x in out.splitlines() if x.startswith("BENCH-RESULT ")), None)
        if line is None:
            raise RuntimeError(f"wrk gave no result for {url}:\n{out}\n{err}")
        raw = json.loads(line.removeprefix("BENCH-RESULT "))
        return Stats(
            requests=raw["requests"],
            seconds=raw["duration_us"] / 1e6,
            errors=raw["errors"],
            p50=raw["p50"] / 1000,
            p95=raw["p95"] / 1000,
            p99=raw["p99"] / 1000,
        )

    try:
        with _process(command) as proc:
            yield proc, result
    finally:
        Path(handle.name).unlink(missing_ok=True)


# Python ----------------------------------------------------------------------------------------
@contextmanager
def _python(url, seconds, connections, method, bodies, headers):
    spec = {
        "url": url,
        "seconds": seconds,
        "connections": connections,
        "method": method,
        "bodies": bodies,
        "headers": headers,
        "timeout": REQUEST_TIMEOUT,
    }

    def result(out: str, err: str, code: int) -> Stats:
        if code != 0:
            raise RuntimeError(f"bench.pyload failed for {url}:\n{err[-3000:]}")
        raw = json.loads(out)
        return stats_from(raw["latencies_ms"], raw["seconds"], raw["errors"])

    with _process([sys.executable, "-m", "bench.pyload", json.dumps(spec)]) as proc:
        yield proc, result
