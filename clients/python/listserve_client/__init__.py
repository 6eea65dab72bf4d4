"""Python client for listserve: `Client` (sync), `AsyncClient` (asyncio), `AdminClient`.

Depends only on httpx and pydantic. Every error answer is raised as a `ListserveError`
subclass (a 422's `field` names the refused input); 429 and 503 answers with `Retry-After` are
retried for you; predict inputs over the server's per-request limit are split and joined.
"""

from listserve_client.aio import AsyncClient
from listserve_client.client import AdminClient, Client
from listserve_client.errors import (
    AuthenticationError,
    ConflictError,
    ListserveError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    ServerError,
    UnavailableError,
    ValidationError,
)
from listserve_client.models import (
    Example,
    Job,
    JobEvent,
    Prediction,
    PredictResult,
    Suggestion,
    Task,
    Version,
)
from listserve_client.transport import RetryPolicy

__version__ = "0.1.0"
__all__ = [
    "AdminClient",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "Example",
    "Job",
    "JobEvent",
    "ListserveError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PredictResult",
    "Prediction",
    "RateLimitError",
    "RetryPolicy",
    "ServerError",
    "Suggestion",
    "Task",
    "UnavailableError",
    "ValidationError",
    "Version",
]
