"""Operations: liveness, readiness, Prometheus metrics and what this process runs."""

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from service import __version__
from service.api.deps import ServicesDep
from service.api.schemas import Health, Info, Ready

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health, summary="The process is alive")
def health() -> dict:
    return {"status": "ok"}


@router.get(
    "/ready",
    response_model=Ready,
    summary="Backbone loaded and warmed up (503 until then)",
    responses={503: {"model": Ready, "description": "Still starting, or start-up failed"}},
)
def ready(services: ServicesDep, response: Response) -> dict:
    if not services.ready:
        response.status_code = 503
        response.headers["Retry-After"] = "5"
    return {"ready": services.ready, "detail": services.status}


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@router.get("/info", response_model=Info, summary="Backbone, head kind, version, cache")
def info(services: ServicesDep) -> dict:
    backbone = services.serving
    return {
        "version": __version__,
        "ready": services.ready,
        "allocator": services.allocator,
        "backbone": backbone.describe() if backbone is not None else None,
        "backbone_choice": services.choice.as_dict() if services.choice is not None else None,
        "head_kind": backbone.prompt_head_kind if backbone is not None else None,
        "runner": services.runner.describe() if services.runner is not None else None,
        "adapter_cache": services.cache.stats() if services.cache is not None else None,
        "batcher": services.batcher.stats() if services.batcher is not None else None,
        "limits": {
            "max_predict_inputs": services.settings.max_predict_inputs,
            "max_text_chars": services.settings.max_text_chars,
        },
    }
