"""The FastAPI application factory."""

from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import __version__
from service.api.errors import install_error_handlers
from service.api.middleware import RequestMiddleware
from service.api.routes import admin, ops, predict, tasks
from service.api.state import RunnerFactory, Services
from service.settings import Settings

DESCRIPTION = """
Few-shot text classification. Create a task from a handful of labelled examples (plus
unlabelled text); listserve trains a small adapter for it with LiST on one shared, frozen
backbone; then `POST /predict/{task_id}`.

Authenticate with `Authorization: Bearer <key>`: a tenant key for `/tasks` and `/predict`, the
admin token for `/admin`. Every error is `{"error": {"type", "message", "details"}}`.
"""


def create_app(
    settings: Settings | None = None, runner_factory: RunnerFactory | None = None
) -> FastAPI:
    """Build the app; start-up (migrations, backbone, runner) happens in its lifespan."""
    settings = settings or Settings()
    services = Services(settings, runner_factory)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await services.start()
        try:
            yield
        finally:
            await services.stop()

    # No trailing-slash redirects: `/predict/%2e%2e%2f` or `/tasks/` answered a bare 307 to a
    # rewritten path; every unknown path is a 404 in the error format instead. The routers are
    # included into this app's router, so its setting is the one that applies.
    app = FastAPI(
        title="listserve",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,
    )
    app.state.services = services
    install_error_handlers(app)
    app.add_middleware(RequestMiddleware, max_body_bytes=settings.max_body_bytes)
    for module in (tasks, predict, admin, ops):
        app.include_router(module.router)
    return app
