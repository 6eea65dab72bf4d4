"""The SetFit peer's server: a FastAPI process holding one SetFit model per task.

    python -m benchmarks.harness.setfit_server --models DIR --tasks 16 --port 8000

`POST /predict/{task}` with `{"inputs": [text, ...]}` answers `{"predictions": [label, ...]}`
from that task's `model.predict`; `GET /health` answers once every model is loaded. See
`setfit_peer` for how the models are trained and why the route is a plain one.
"""

import argparse
from pathlib import Path

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from benchmarks.harness.setfit_peer import model_folders


class PredictRequest(BaseModel):
    inputs: list[str] = Field(min_length=1, max_length=64)


def create_app(models: dict) -> FastAPI:
    """The app over loaded models, keyed by task name."""
    app = FastAPI(title="SetFit peer")

    @app.get("/health")
    def health() -> dict:
        return {"tasks": len(models)}

    @app.post("/predict/{task}")
    def predict(task: str, request: PredictRequest) -> dict:
        model = models.get(task)
        if model is None:
            raise HTTPException(status_code=404, detail=f"no task {task!r}")
        return {"predictions": [str(label) for label in model.predict(request.inputs)]}

    return app


def load_models(models_dir: Path, count: int, device: str = "cpu") -> dict:
    from setfit import SetFitModel

    return {
        folder.name: SetFitModel.from_pretrained(str(folder), device=device)
        for folder in model_folders(models_dir, count)
    }


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = create_app(load_models(args.models, args.tasks, args.device))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
