"""The load generators' HTTP client: one plain keep-alive connection per simulated client."""

import asyncio


class Connection:
    """A minimal keep-alive HTTP/1.1 client connection on asyncio streams.

    The load generator must not be the bottleneck: httpx's AsyncClient managed only ~19 req/s
    against `/health` at 64 concurrent requests on this machine (a raw client: ~490 req/s), so
    each simulated client owns one plain connection and parses just status and Content-Length.
    """

    def __init__(self, host: str, port: int, auth: str) -> None:
        self.host, self.port, self.auth = host, port, auth
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """Send one request; a kept-alive connection the server has since closed (uvicorn
        drops idle ones after 5 s) is reopened once. Predictions are safe to resend."""
        reused = self.writer is not None
        try:
            return await self._exchange(method, path, body)
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            if not reused:
                raise
            return await self._exchange(method, path, body)

    async def _exchange(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {self.auth}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        header = await self.reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length")
        )
        payload = await self.reader.readexactly(length)
        if any(line.lower() == "connection: close" for line in lines):
            await self.close()
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None
