"""`GET /tasks/{id}/suggestions`: which unlabelled texts to label next (service/serving/
suggester.py picks them with the version the task serves)."""

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from list_core.field_error import FieldError
from service.api.deps import ServicesDep, TenantId
from service.api.lifecycle_schemas import SuggestionList
from service.api.routes.common import TaskId, errors
from service.api.routes.predict import api_error, rate_limit
from service.serving.errors import ServingError

router = APIRouter(tags=["tasks"])


@router.get(
    "/tasks/{task_id}/suggestions",
    response_model=SuggestionList,
    summary="The unlabelled texts the served version is least sure about, to label next",
    description="Spread over the predicted labels, no two near duplicates (character 4-gram "
    "Jaccard >= 0.8), most uncertain first within each label's turn; texts already labelled "
    "are left out. Scores at most LISTSERVE_SUGGESTION_POOL texts; counts as one request "
    "against the predict rate limit.",
    responses=errors(401, 404, 409, 422, 429, 503),
)
async def suggestions(
    task_id: TaskId,
    tenant_id: TenantId,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, description="How many (LISTSERVE_MAX_SUGGESTIONS).")] = 10,
) -> dict:
    services.require_ready()
    if limit > services.settings.max_suggestions:
        raise FieldError("limit", f"at most {services.settings.max_suggestions}, got {limit}")
    rate_limit(services, tenant_id)
    suggester = services.suggester
    try:
        pool = await run_in_threadpool(suggester.pool, tenant_id, task_id)
        found = await suggester.suggestions(tenant_id, task_id, pool, limit)
    except ServingError as error:
        raise api_error(error) from error
    return {
        "task": task_id,
        "adapter_version": found.version,
        "pool": found.pool,
        "data": found.picks,
    }
