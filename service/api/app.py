"""The FastAPI application factory."""

from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import __version__
from service.api.docs_pages import install_docs
from service.api.errors import install_error_handlers
from service.api.middleware import RequestMiddleware
from service.api.openapi import install_openapi
from service.api.routes import (
    admin,
    jobs,
    ops,
    overview,
    predict,
    suggestions,
    task_data,
    tasks,
    tenants_admin,
    versions,
)
from service.api.state import RunnerFactory, Services
from service.dashboard.pages import install_dashboard
from service.serving.history import ServingHistory, read_totals
from service.settings import Settings

DESCRIPTION = """
Few-shot text classification. Create a task from a handful of labelled examples (plus
unlabelled text); listserve trains a small adapter for it with LiST on one shared, frozen
backbone; then `POST /predict/{task_id}`.

Then follow the job (`GET /jobs/{id}/events`, live with `Accept: text/event-stream`), add data
and feedback, retrain, compare versions and promote one. A Python client ships in
`clients/python` (`listserve_client`).

Authenticate with `Authorization: Bearer <key>`: a tenant key for `/tasks`, `/jobs` and
`/predict`, the admin token for `/admin`. Every error is `{"error": {"type", "message",
"details"}}`.
"""


def create_app(
    settings: Settings | None = None, runner_factory: RunnerFactory | None = None
) -> FastAPI:
    """Build the app; start-up (migrations, backbone, runner) happens in its lifespan."""
    settings = settings or Settings()
    services = Services(settings, runner_factory)
    history = ServingHistory(
        lambda: read_totals(services.batcher, services.cache) if services.ready else None,
        settings.expert.serving_history_seconds,
        settings.expert.serving_history_samples,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await services.start()
        history.start()
        try:
            yield
        finally:
            await history.stop()
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
        docs_url=None,  # served from packaged assets instead of a CDN: install_docs
        redoc_url=None,
    )
    app.state.services = services
    app.state.serving_history = history
    install_error_handlers(app)
    app.add_middleware(RequestMiddleware, max_body_bytes=settings.max_body_bytes)
    for module in (
        tasks,
        task_data,
        versions,
        suggestions,
        jobs,
        predict,
        admin,
        tenants_admin,
        overview,
        ops,
    ):
        app.include_router(module.router)
    install_docs(app)
    install_dashboard(app)
    install_openapi(app, settings)
    return app
