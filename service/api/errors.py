"""One error format for every failure: `{"error": {"type", "message", "details"}}`.

FastAPI's own 422s (bad JSON, wrong types, unknown fields) and Starlette's 404/405 are rewritten
into it too, so clients parse a single shape, and the message always names the field.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from list_core.field_error import FieldError

log = logging.getLogger(__name__)
DATABASE_RETRY_AFTER_SECONDS = 5
FIELD_CHARS = 120
REASON_CHARS = 1000
MAX_DETAILS = 10  # a list of 100k wrong items is refused with its first few errors, not all

_HTTP_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        details=None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.details = details
        self.headers = headers or {}


def error_response(
    status: int, type: str, message: str, details=None, headers: dict | None = None
) -> JSONResponse:
    body = {"error": {"type": type, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


def clip(text: str, limit: int) -> str:
    """Error texts name fields and quote values taken from the request. Escape what is not
    encodable (an unpaired surrogate in a dict key) and cut what is huge, so no input can turn
    its own refusal into a 500 or a megabyte echoed back."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[:limit] + "…"


def invalid_fields(details: list[dict]) -> JSONResponse:
    """The 422 for one or more `{"field", "message"}` failures; the message leads with the
    first one."""
    details = [
        {"field": clip(d["field"], FIELD_CHARS), "message": clip(d["message"], REASON_CHARS)}
        for d in details[:MAX_DETAILS]
    ]
    first = details[0] if details else {"field": "body", "message": "invalid request"}
    return error_response(422, "validation_error", f"{first['field']}: {first['message']}", details)


def not_found(what: str = "task") -> ApiError:
    """The same answer for a missing resource and for another tenant's: never reveal which."""
    return ApiError(404, "not_found", f"{what} not found")


def field_path(location: tuple) -> str:
    """`("body", "examples", 3, "label")` -> `examples[3].label`."""
    parts = [part for part in location if part not in ("body", "query", "path", "header")]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _detail(error: dict) -> dict:
    if error.get("type") == "json_invalid":
        position = error.get("loc", ("body", "?"))[-1]
        return {"field": "body", "message": f"invalid JSON near character {position}"}
    return {
        "field": field_path(tuple(error.get("loc", ()))),
        "message": error.get("msg", "invalid"),
    }


def _not_json(request: Request, problems: list[dict]) -> str | None:
    """The request's media type when a JSON body was refused only because it was not labelled
    JSON: FastAPI then validates the raw bytes and says "valid dictionary", which hides that
    `curl -d` without `-H 'content-type: application/json'` (or a `text/plain` client) is the
    cause."""
    whole_body = [p for p in problems if tuple(p.get("loc", ())) == ("body",)]
    if not whole_body or not isinstance(whole_body[0].get("input"), bytes | str):
        return None
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return None
    return clip(media_type or "none", FIELD_CHARS)


def _unparsable_body(cause: BaseException) -> JSONResponse:
    """FastAPI answers a bare 400 when the JSON decoder fails for a reason other than syntax:
    bytes that are not UTF-8, or nesting deeper than the decoder's recursion limit. That is
    invalid input like any other, so it gets the same 422 naming the body and the reason."""
    if isinstance(cause, UnicodeDecodeError):
        reason = f"not valid UTF-8 at byte {cause.start}; JSON bodies must be UTF-8"
    elif isinstance(cause, RecursionError):
        reason = "JSON nested too deeply"
    else:
        reason = "could not be parsed as JSON"
    return invalid_fields([{"field": "body", "message": reason}])


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.type, error.message, error.details, error.headers)

    @app.exception_handler(FieldError)
    async def _field_error(request: Request, error: FieldError) -> JSONResponse:
        details = [{"field": field, "message": error.message} for field in error.fields]
        return invalid_fields(details)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        media_type = _not_json(request, problems)
        if media_type is not None:
            return error_response(
                415,
                "unsupported_media_type",
                f"the body must be JSON sent with 'Content-Type: application/json' "
                f"(got {media_type!r})",
                {"content_type": media_type, "expected": "application/json"},
            )
        return invalid_fields([_detail(e) for e in problems])

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400 and error.__cause__ is not None:
            return _unparsable_body(error.__cause__)
        kind = _HTTP_TYPES.get(error.status_code, "http_error")
        return error_response(
            error.status_code, kind, str(error.detail), None, getattr(error, "headers", None)
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database_unavailable(request: Request, error: Exception) -> JSONResponse:
        """The registry is down, restarting or cut the connection (or SQLite stayed locked past
        its busy timeout): a retryable outage, not a bug. The pool replaces dead connections,
        so the same process answers normally once the database is back."""
        log.warning("registry database unavailable: %s", " ".join(str(error.orig).split())[:300])
        return error_response(
            503,
            "database_unavailable",
            "the registry database is unavailable; retry shortly",
            None,
            {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error; see the server log")
