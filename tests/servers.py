"""Real HTTP servers on loopback for tests: a WSGI app served by werkzeug on a free port."""

from __future__ import annotations

import threading
from contextlib import contextmanager

from werkzeug.serving import make_server


class LiveServer:
    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        self._server = make_server(host, port, app, threaded=True)
        self.host = host
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> LiveServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@contextmanager
def serving(app, port: int = 0):
    server = LiveServer(app, port=port).start()
    try:
        yield server
    finally:
        server.stop()
