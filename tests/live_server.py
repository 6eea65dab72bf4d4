"""A real HTTP server for tests that need one (a browser, a command-line client): the app on
uvicorn in a thread of the test process, on a free loopback port, ready before it is used."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from service.api.app import create_app
from service.settings import Settings
from tests.service.conftest import wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def live_server(settings: Settings, timeout: float = 90.0) -> Iterator[str]:
    """Serve `create_app(settings)`; yields its base URL once `/ready` answers 200."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert thread.is_alive(), "the server thread exited"
        try:
            return httpx.get(f"{base}/ready", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, timeout, "the live server to be ready")
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)
