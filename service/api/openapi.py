"""The served OpenAPI document, with what the code alone cannot tell FastAPI: the configured
predict limits (from settings, so the schema shows this deployment's values, not defaults),
and the 415 every JSON body can get when it is not sent as JSON."""

from typing import Any

from fastapi import FastAPI

from service.api.schemas import ErrorResponse
from service.settings import Settings

PREDICT_BODIES = ("PredictRequest", "MultiPredictRequest")
UNSUPPORTED_MEDIA_TYPE = {
    "description": "The body is not labelled JSON: send 'Content-Type: application/json'",
    "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{ErrorResponse.__name__}"}}
    },
}


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Replace `app.openapi` with one that adds the limits and the 415s (built once, cached
    by FastAPI on `app.openapi_schema` as usual)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            _predict_limits(schema, settings)
            _unsupported_media_type(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


def limits_text(settings: Settings) -> str:
    return (
        f"At most {settings.max_predict_inputs} inputs per request "
        f"(LISTSERVE_MAX_PREDICT_INPUTS), each text at most {settings.max_text_chars} characters "
        "(LISTSERVE_MAX_TEXT_CHARS); larger inputs are refused with 422 naming the input, so "
        "split them into several requests (`listserve predict --server` does)."
    )


def _predict_limits(schema: dict, settings: Settings) -> None:
    components = schema.get("components", {}).get("schemas", {})
    for name in PREDICT_BODIES:
        inputs = components.get(name, {}).get("properties", {}).get("inputs")
        if inputs is None:
            continue
        inputs["maxItems"] = settings.max_predict_inputs
        inputs["description"] = limits_text(settings)
        for option in inputs.get("items", {}).get("anyOf", []):
            if option.get("type") == "string":
                option["maxLength"] = settings.max_text_chars
    for field in components.get("PairInput", {}).get("properties", {}).values():
        for option in field.get("anyOf", [field]):
            if option.get("type") == "string":
                option["maxLength"] = settings.max_text_chars
    for path, item in schema.get("paths", {}).items():
        if path.startswith("/predict") and "post" in item:
            operation = item["post"]
            operation["description"] = (
                operation.get("description", "") + "\n\n" + limits_text(settings)
            ).strip()


def _unsupported_media_type(schema: dict) -> None:
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                operation.setdefault("responses", {}).setdefault("415", UNSUPPORTED_MEDIA_TYPE)
