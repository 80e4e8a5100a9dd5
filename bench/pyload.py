"""A small HTTP load generator in Python, for machines without wrk.

``python -m bench.pyload '{"url": …, "seconds": 10, "connections": 16}'`` runs one thread per
connection, each sending the request over its own keep-alive connection until the time is up
(taking the ``bodies`` in turn, if there are several), then prints the latencies, the time
taken and the errors as JSON. ``Connection`` is also what ``bench.shopper`` uses to time
requests that carry a customer's cookie.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit


class Connection:
    """One keep-alive HTTP/1.1 connection that reconnects when the server closes it."""

    def __init__(self, url: str, timeout: float):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, body: str = "", headers: dict | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request; ``(status, headers, body)``. :raise OSError: on a socket error."""
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self._conn.request(method, path, body=body or None, headers=headers or {})
            response = self._conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise OSError(str(exc)) from exc
        answer = {k.lower(): v for k, v in response.getheaders()}
        if answer.get("connection", "").lower() == "close":
            self.close()
        return response.status, answer, data

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def load(spec: dict) -> dict:
    parts = urlsplit(spec["url"])
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    method, bodies = spec.get("method", "GET"), list(spec.get("bodies") or [""])
    headers = dict(spec.get("headers") or {})
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start = time.monotonic()
    deadline = start + float(spec["seconds"])

    def worker(number: int) -> None:
        conn = Connection(spec["url"], float(spec.get("timeout", 10)))
        mine: list[float] = []
        failed = 0
        turn = number
        while time.monotonic() < deadline:
            turn += 1
            body = bodies[turn % len(bodies)]
            began = time.perf_counter()
            try:
                status, _, _ = conn.request(method, path, body, headers)
            except OSError:
                failed += 1
                time.sleep(0.01)  # a refused connection must not spin
                continue
            mine.append((time.perf_counter() - began) * 1000)
            if status >= 400:
                failed += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(int(spec["connections"]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=float(spec["seconds"]) + float(spec.get("timeout", 10)) + 5)
    return {"latencies_ms": latencies, "seconds": time.monotonic() - start, "errors": errors[0]}


def main() -> None:
    print(json.dumps(load(json.loads(sys.argv[1]))))


if __name__ == "__main__":
    main()
