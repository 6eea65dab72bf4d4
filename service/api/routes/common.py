"""Shared route pieces: documented error responses, id and paging parameters."""

from typing import Annotated

from fastapi import Path, Query

from service.api.schemas import ErrorResponse

# Every id the service issues fits this (`tsk_` + hex); anything else, a NUL or a slash say,
# is refused before it reaches a query (PostgreSQL cannot even compare text holding a NUL).
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
TaskId = Annotated[str, Path(pattern=ID_PATTERN, description="A task id.")]
JobId = Annotated[str, Path(pattern=ID_PATTERN, description="A job id.")]
PageLimit = Annotated[int, Query(ge=1, le=200, description="Page size.")]
Cursor = Annotated[
    str | None,
    Query(pattern=ID_PATTERN, description="`id` of the last item of the previous page."),
]


def errors(*codes: int) -> dict:
    """OpenAPI entries for error statuses, all in the one error format."""
    text = {
        401: "Missing or invalid key",
        404: "Not found (or owned by another tenant)",
        409: "Conflict with the resource's state",
        413: "Request body too large",
        422: "Invalid input; the message names the field",
        429: "Rate limited, over quota or overloaded; see Retry-After",
        503: "Not ready, a dependency is unavailable, or (admin) no admin token is set",
    }
    return {code: {"model": ErrorResponse, "description": text[code]} for code in codes}
