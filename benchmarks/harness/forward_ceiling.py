"""The in-process ceiling of listserve's served forward: rows/s at each batch size, no HTTP.

What `listserve serve` runs per flush, with nothing around it: the serving twin the service's
settings build (`serving_backbone` with the expert settings' precision, scripted forward and
prepacking), the apply mode they resolve, the model and torch threads `use_serving_threads`
picks for this machine, and per batch one tokenizer call plus one `forward_encoded` over rows
of distinct task adapters (built as the serving benchmarks seed them), shortest row first.
Each model thread loops over fresh random batches for a fixed time, as the server's model
threads do under load; rows/s is all threads' rows over the wall time. The HTTP peak of the
same adapters divided by the best batch size's rows/s is how much of the forward the server
delivers.
"""

import random
import threading
import time

import torch

from benchmarks.harness.workload import make_models, test_sentences
from list_core.adapters import resolve_apply_mode
from list_core.backbone import load_backbone
from list_core.inference import Row, encode_rows, forward_encoded
from list_core.serving.speedups import serving_backbone


def measure_ceiling(
    backbone_path: str,
    sizes: list[int],
    distinct: int,
    seconds: float,
    device: str = "cpu",
    bottleneck: int = 32,
    seed: int = 0,
) -> list[dict]:
    """One result per batch size: rows/s of the served forward over `distinct` adapters."""
    from service.process.threads import use_serving_threads
    from service.settings import Settings

    expert = Settings().expert
    backbone = load_backbone(backbone_path, device=device)
    twin = serving_backbone(
        backbone,
        expert.serving_precision,
        expert.serving_compile,
        expert.serving_scripted,
        expert.serving_prepack,
    )
    threads = use_serving_threads(expert.model_threads, expert.torch_threads, twin.device.type)
    apply_mode = resolve_apply_mode(expert.apply_mode, twin.device, twin.scripted is not None)
    models = make_models(backbone, distinct, bottleneck)
    texts = test_sentences()
    results = []
    for size in sizes:
        one_pass(twin, models, texts, size, apply_mode, 0.0, threads.model_threads, seed)
        rows, wall, cpu = one_pass(
            twin, models, texts, size, apply_mode, seconds, threads.model_threads, seed
        )
        results.append(
            {
                "batch_rows": size,
                "distinct_adapters": min(size, distinct),
                "rows_per_s": round(rows / wall, 2),
                "rows_per_cpu_s": round(rows / cpu, 2) if cpu > 0 else None,
                "seconds": round(wall, 2),
                "cpu_s": round(cpu, 3),
                "model_threads": threads.model_threads,
                "torch_threads": torch.get_num_threads(),
                "precision": twin.precision,
                "apply_mode": apply_mode,
                "device": str(twin.device),
            }
        )
    return results


def one_pass(
    twin, models, texts, size: int, apply_mode: str, seconds: float, model_threads: int, seed: int
) -> tuple[int, float, float]:
    """(rows, wall seconds, process CPU seconds) of `model_threads` threads scoring random
    `size`-row batches for `seconds` (at least one batch each: `seconds` 0 is a warm-up). On a
    shared machine the wall time depends on the CPU share this process got; rows per CPU
    second does not, and compares with the server's rows per server CPU second."""
    counts = [0] * model_threads
    started, cpu_started = time.perf_counter(), time.process_time()
    deadline = started + seconds

    def work(index: int) -> None:
        rng = random.Random(seed + index)
        with torch.no_grad():
            while True:
                drawn = sorted(rng.choices(texts, k=size), key=len)
                chosen = rng.sample(range(len(models)), min(size, len(models)))
                rows = [Row(models[chosen[i % len(chosen)]], text) for i, text in enumerate(drawn)]
                forward_encoded(
                    twin, [row.model for row in rows], encode_rows(rows), apply_mode=apply_mode
                )
                counts[index] += size
                if time.perf_counter() >= deadline:
                    return

    workers = [threading.Thread(target=work, args=(i,)) for i in range(model_threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts), time.perf_counter() - started, time.process_time() - cpu_started
