"""Request dependencies: the process's services, the calling tenant, the admin check."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.api.errors import ApiError
from service.api.state import Services
from service.auth import same_secret

_bearer = HTTPBearer(auto_error=False, description="A tenant API key, or the admin token.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def get_services(request: Request) -> Services:
    """Async so FastAPI calls it on the event loop: a sync dependency costs every request a
    thread-pool hop, which under load waited for the GIL behind the model thread."""
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, None, {"WWW-Authenticate": "Bearer"})


async def current_tenant(request: Request, services: ServicesDep, credentials: Credentials) -> str:
    """The tenant whose key is in `Authorization: Bearer ...`; 401 otherwise."""
    if credentials is None:
        raise _unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    secret = credentials.credentials
    tenant_id = services.tenants.cached(secret) or await services.read_registry(
        services.tenants.resolve, secret
    )
    if tenant_id is None:
        raise _unauthorized("invalid API key")
    request.state.tenant_id = tenant_id  # for the access log line
    return tenant_id


async def require_admin(services: ServicesDep, credentials: Credentials) -> None:
    """The admin token from settings, compared in constant time."""
    token = services.settings.admin_token
    if token is None or not token.get_secret_value():
        raise ApiError(503, "admin_disabled", "the admin API is off: set LISTSERVE_ADMIN_TOKEN")
    if credentials is None:
        raise _unauthorized("missing admin token: send 'Authorization: Bearer <token>'")
    if not same_secret(credentials.credentials, token.get_secret_value()):
        raise _unauthorized("invalid admin token")


TenantId = Annotated[str, Depends(current_tenant)]
AdminOnly = Depends(require_admin)
