"""Real HTTP servers on loopback for tests: a WSGI app served by werkzeug on a free port."""

from __future__ import annotations

import threading
from contextlib import contextmanager

from werkzeug.serving import make_server


class LiveServer:
    """Binds first, so that an app that must know its own URL can be built afterwards and set
    as ``server.app`` before ``start``."""

    def __init__(self, app=None, host: str = "127.0.0.1", port: int = 0):
        self.app = app
        self._server = make_server(host, port, self._dispatch, threaded=True)
        self.host = host
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _dispatch(self, environ, start_response):
        return self.app(environ, start_response)

    def start(self) -> LiveServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.server_close()

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
