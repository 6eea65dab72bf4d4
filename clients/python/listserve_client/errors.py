"""The service's error body, `{"error": {"type", "message", "details"}}`, as typed exceptions.

Catch `ListserveError` for any of them, or one subclass per status. A 422's `field` names the
input that was refused (`examples[3].label`), as the server's message does.
"""

import httpx


class ListserveError(Exception):
    """Any error answer: the HTTP status, the error `type`, the message, its details, the
    field it is about (422) and the `Retry-After` seconds when the server sent one."""

    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        details: object = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {type}: {message}")
        self.status = status
        self.type = type
        self.message = message
        self.details = details
        self.retry_after = retry_after

    @property
    def field(self) -> str | None:
        """The first refused field of a 422 (`examples[0].label`), else None."""
        if isinstance(self.details, list) and self.details and isinstance(self.details[0], dict):
            return self.details[0].get("field")
        return None


class AuthenticationError(ListserveError):
    """401: a missing or wrong key."""


class NotFoundError(ListserveError):
    """404: no such task, job or version, or another tenant's (the server never says which)."""


class ConflictError(ListserveError):
    """409: the resource's state forbids it (no ready version yet, a job already running)."""


class PayloadTooLargeError(ListserveError):
    """413: the body or the batch is over the server's limit."""


class ValidationError(ListserveError):
    """422: invalid input; `field` names it."""


class RateLimitError(ListserveError):
    """429: rate limit, quota or a full queue (retried for you while `Retry-After` is sent)."""


class UnavailableError(ListserveError):
    """503: not ready yet, or a dependency is down (retried while `Retry-After` is sent)."""


class ServerError(ListserveError):
    """Any other 5xx: a bug on the server's side; its log has the details."""


_BY_STATUS: dict[int, type[ListserveError]] = {
    401: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: ValidationError,
    429: RateLimitError,
    503: UnavailableError,
}


def retry_after(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds (the service sends integer seconds), or None."""
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def error_from(response: httpx.Response) -> ListserveError:
    """The exception for an error answer, from its body when it is in the service's format."""
    kind = _BY_STATUS.get(response.status_code)
    if kind is None:
        kind = ServerError if response.status_code >= 500 else ListserveError
    try:
        error = response.json()["error"]
        type_, message, details = error["type"], error["message"], error.get("details")
    except (ValueError, KeyError, TypeError):
        type_, message, details = "http_error", response.text[:500] or response.reason_phrase, None
    return kind(response.status_code, type_, message, details, retry_after(response))
