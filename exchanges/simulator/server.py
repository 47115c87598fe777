"""Serving the simulator on loopback with waitress (a threaded, production-grade WSGI server)."""
import logging
import threading

from django.core.wsgi import get_wsgi_application
from django.db import connections
from waitress import wasyncore
from waitress.server import create_server

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


class _CloseConnections:
    """WSGI wrapper closing this thread's database connections after each request.

    Used by in-process servers in tests, so no connection outlives the test database.
    """

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        try:
            for chunk in self.app(environ, start_response):
                yield chunk
        finally:
            connections.close_all()


def simulator_server(*, port: int = 0, threads: int = 8, close_connections: bool = False, **adjustments):
    """A waitress server of the whole Django app (the simulator lives at /api/v3 and /sapi/v1).

    Port 0 picks a free port: read it from ``server.effective_port``.
    """
    app = get_wsgi_application()
    if close_connections:
        app = _CloseConnections(app)
    return create_server(app, host=LOOPBACK, port=port, threads=threads, ident="mm-exchange-simulator",
                         channel_timeout=30, clear_untrusted_proxy_headers=True, **adjustments)


class BackgroundSimulator:
    """The simulator served from a daemon thread of this process (tests, benchmarks)."""

    def __init__(self, *, threads: int = 8, close_connections: bool = True):
        # A short loop timeout lets the serving thread notice the shutdown promptly.
        self.server = simulator_server(port=0, threads=threads, close_connections=close_connections,
                                       asyncore_loop_timeout=0.05)
        self.thread = threading.Thread(target=self.server.run, name="exchange-simulator", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.server.effective_port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        # Closing only the listener would leave clients' keep-alive channels serving.
        self.server.task_dispatcher.shutdown(timeout=5)
        # Close every socket from the serving thread itself (the trigger runs the thunk there).
        try:
            self.server.trigger.pull_trigger(lambda: wasyncore.close_all(self.server._map))
        except OSError:
            # The loop already closed its sockets (the trigger among them): nothing is left to close.
            logger.info("sim_server_already_closed port=%s", self.server.effective_port)
        self.thread.join(timeout=5)
        if self.thread.is_alive():
            logger.warning("sim_server_thread_still_running port=%s", self.server.effective_port)
        return False
