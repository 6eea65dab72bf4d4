"""Shared route pieces: documented error responses and paging parameters."""

from typing import Annotated

from fastapi import Query

from service.api.schemas import ErrorResponse

PageLimit = Annotated[int, Query(ge=1, le=200, description="Page size.")]
Cursor = Annotated[str | None, Query(description="`id` of the last item of the previous page.")]


def errors(*codes: int) -> dict:
    """OpenAPI entries for error statuses, all in the one error format."""
    text = {
        401: "Missing or invalid key",
        404: "Not found (or owned by another tenant)",
        409: "Conflict with the resource's state",
        413: "Request body too large",
        422: "Invalid input; the message names the field",
        429: "Rate limited, over quota or overloaded; see Retry-After",
        503: "Not ready, or a dependency is unavailable",
    }
    return {code: {"model": ErrorResponse, "description": text[code]} for code in codes}
