"""One ASGI middleware for what every request needs: a request id, the body size cap, the
access log line and the Prometheus request metrics.

The body is read (up to the cap) before the app sees it, so an oversized upload is refused with
413 however it is sent (Content-Length or chunked) and never parsed.
"""

import json
import logging
import os
import random
import re
import time

from service.logs import request_id_var
from service.metrics import HTTP_LATENCY, HTTP_REQUESTS

log = logging.getLogger("service.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Request ids only correlate log lines, so they need to be unique, not unpredictable. uuid4
# reads os.urandom, a system call that releases the GIL: on the event loop of a busy server
# each id then waited ~0.14 ms to win the GIL back from the model threads (cProfile, mixed
# serving at concurrency 64). A private generator, seeded from os.urandom once and again in
# every forked child, makes them without a system call.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


class RequestMiddleware:
    def __init__(self, app, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = {"code": 500}

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            body = await self._read_body(scope, receive)
            if body is None:
                await _too_large(send_with_id, self.max_body_bytes)
            else:
                await self.app(scope, _replay(body, receive), send_with_id)
        finally:
            self._record(scope, status["code"], time.perf_counter() - started)
            request_id_var.reset(token)

    async def _read_body(self, scope, receive) -> bytes | None:
        """The whole body, or None when it exceeds the cap."""
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _record(self, scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        HTTP_REQUESTS.labels(method, template, str(status)).inc()
        HTTP_LATENCY.labels(method, template).observe(seconds)
        tenant_id = (scope.get("state") or {}).get("tenant_id")
        log.info(
            "request",
            extra={
                "method": method,
                "route": template,
                "path": scope.get("path"),
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "tenant_id": tenant_id,
            },
        )


def _request_id(scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _REQUEST_ID.match(candidate):
                return candidate
    return f"{_ids.getrandbits(128):032x}"


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _too_large(send, limit: int) -> None:
    payload = json.dumps(
        {
            "error": {
                "type": "payload_too_large",
                "message": f"request body exceeds {limit} bytes (LISTSERVE_MAX_BODY_BYTES)",
                "details": {"limit_bytes": limit},
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
