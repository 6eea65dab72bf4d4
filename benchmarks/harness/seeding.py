"""The serving benchmarks' registry and store: task adapters seeded once per work folder.

Every task is written through the service's own registry and store code, each with its own
random adapter weights on one backbone, so a server started on the folder serves them as it
would serve trained ones. A seeded folder (`--workdir`) is reused by later runs.
"""

import json
from pathlib import Path


def seed(workdir: Path, backbone_path: str, count: int, tenants: int = 1) -> dict:
    """`count` ready tasks, each with its own random adapter, written through the service's own
    registry and store code; task i belongs to tenant i % `tenants` (one tenant by default).
    Returns the manifest (keys, task ids, bytes)."""
    import torch

    from list_core.adapters import AdapterConfig
    from list_core.backbone import load_backbone
    from list_core.prompts import TaskSpec
    from list_core.task_model import TaskModel
    from service.registry.adapters import register_adapter
    from service.registry.db import Database
    from service.registry.jobs import claim_job
    from service.registry.tasks import NewTask, Quotas, create_task
    from service.registry.tenants import create_tenant
    from service.serving.adapter_cache import model_bytes
    from service.store import AdapterStore

    backbone = load_backbone(backbone_path, device="cpu")
    words = {"negative": "terrible", "positive": "great"}
    spec = TaskSpec.create(["negative", "positive"], label_words=words)
    model = TaskModel(backbone, spec, "list", AdapterConfig(bottleneck=32), 64)
    model.eval().requires_grad_(False)
    database = Database(f"sqlite:///{workdir / 'registry.db'}")
    database.migrate()
    store = AdapterStore(workdir / "adapters")
    with database.session() as session:
        keyed = [create_tenant(session, "serving-benchmark") for _ in range(tenants)]
    task_ids = []
    for start in range(0, count, 64):
        with database.session() as session:
            for index in range(start, min(count, start + 64)):
                tenant = keyed[index % tenants][0]
                generator = torch.Generator().manual_seed(index)
                for parameter in model.adapters.parameters():
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
                new = NewTask(
                    tenant_id=tenant.id,
                    name=f"bench-{index}",
                    labels=list(spec.labels),
                    template=spec.template,
                    label_words=dict(spec.label_words),
                    method="list",
                    head_kind=model.head_kind,
                    hyperparameters={},
                    examples=[{"text": "seeded by benchmarks.serving", "label": "positive"}],
                )
                task, job = create_task(session, new, Quotas(10**9, 10**9), 3)
                claim_job(session, job.id, "serving-benchmark", 3600)
                stored = store.write(tenant.id, task.id, 1, model, backbone)
                register_adapter(
                    session,
                    job.id,
                    "serving-benchmark",
                    1,
                    stored.path,
                    stored.sha256,
                    stored.size_bytes,
                    backbone.fingerprint,
                    {},
                )
                task_ids.append(task.id)
    database.dispose()
    manifest = {
        "api_key": keyed[0][1],
        "api_keys": [api_key for _, api_key in keyed],
        "tasks": task_ids,
        "adapter_bytes": model_bytes(model),
        "backbone": backbone.fingerprint,
        "backbone_path": backbone_path,
    }
    (workdir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return manifest


def load_or_seed(workdir: Path, backbone_path: str, count: int, tenants: int = 1) -> dict:
    """Reuse a seeded `--workdir` when it holds enough adapters and these tenants for this
    backbone."""
    path = workdir / "manifest.json"
    if path.is_file():
        manifest = json.loads(path.read_text(encoding="utf-8"))
        keys = manifest.get("api_keys", [manifest["api_key"]])
        if (
            len(manifest["tasks"]) >= count
            and len(keys) == tenants
            and manifest["backbone_path"] == backbone_path
        ):
            return manifest
        raise SystemExit(f"{workdir} holds another seeding; pass an empty --workdir")
    workdir.mkdir(parents=True, exist_ok=True)
    return seed(workdir, backbone_path, count, tenants)
