"""Micro-benchmark: the CPU one `/predict` request costs with no model at all, the floor under
the peers benchmark's "HTTP peak >= 0.9 of the in-process ceiling" target.

    python -m benchmarks.micro.http_floor --duration 5 --warmup 2

A server with listserve's own HTTP stack (uvicorn as `listserve serve` runs it, the service's
`RequestMiddleware`, its `PredictRequest`/`PredictResponse` models) answers `/predict/{task}`
with a fixed two-label prediction per input instead of scoring it. The peers benchmark's load
generator (`harness/peer_load.py`: the same sentences, one per request, closed loop) drives it
at each concurrency, and the server's own CPU time gives requests per server CPU-second.

Per row, serving costs at least the forward (1 / the in-process ceiling's rows per CPU-s) plus
this floor (1 / its requests per CPU-s), so one-row requests can reach at most
`floor / (floor + ceiling)` of the ceiling per CPU-second, whatever the batcher does. The
table divides by the newest peers run's ceiling to show that bound. One record per
concurrency to results/http_floor.jsonl.
"""

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

from benchmarks.harness.arguments import int_list
from benchmarks.harness.peer_load import Target, drive
from benchmarks.harness.peer_servers import http_server
from benchmarks.harness.records import (
    RESULTS_DIR,
    append_record,
    cpu_model,
    date_span,
    git_commit,
    load_avg,
    read_records,
    utc_now,
)
from benchmarks.harness.server import free_port

RESULTS = RESULTS_DIR / "http_floor.jsonl"
PEERS_RESULTS = RESULTS_DIR / "peers.jsonl"
MAX_BODY_BYTES = 1 << 20


def create_floor_app():
    """listserve's request path without the model: middleware, validation, serialisation."""
    from fastapi import FastAPI

    from service.api.middleware import RequestMiddleware
    from service.api.schemas import Prediction, PredictRequest, PredictResponse

    app = FastAPI(title="listserve HTTP floor")
    app.add_middleware(RequestMiddleware, max_body_bytes=MAX_BODY_BYTES)
    scores = {"positive": 0.93, "negative": 0.07}

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.post("/predict/{task}", response_model=PredictResponse)
    async def predict(task: str, body: PredictRequest) -> PredictResponse:
        predictions = [
            Prediction(id=f"prd_{task}_{i}", label="positive", score=0.93, scores=scores)
            for i, _ in enumerate(body.inputs)
        ]
        return PredictResponse(task=task, adapter_version=1, predictions=predictions)

    return app


def serve(port: int) -> None:
    """uvicorn with the options `listserve serve` gives it (`service/cli.py`)."""
    import uvicorn

    uvicorn.run(create_floor_app(), host="127.0.0.1", port=port, log_config=None, access_log=False)


def measure(args: argparse.Namespace) -> None:
    run_id = utc_now()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "benchmarks.micro.http_floor", "serve", "--port", str(port)]
    with tempfile.TemporaryDirectory(prefix="http-floor-") as workdir:
        log = Path(workdir) / "server.log"
        with http_server(command, dict(os.environ), log, f"{url}/health") as pid:
            target = Target(url, "/predict/{task}", ["tsk_floor"])
            for concurrency in args.concurrency:
                load_before = load_avg()
                result = asyncio.run(
                    drive(target, concurrency, args.warmup, args.duration, args.max_requests,
                          server_pid=pid)
                )  # fmt: skip
                record = {
                    "benchmark": "http_floor",
                    "run": run_id,
                    "concurrency": concurrency,
                    **result,
                    "cpu_model": cpu_model(),
                    "cpus": os.cpu_count(),
                    "commit": git_commit(),
                    "command": "python -m benchmarks.micro.http_floor " + " ".join(args.argv),
                    "load_avg_start": load_before,
                    "load_avg_end": load_avg(),
                    "date": utc_now(),
                }
                append_record(args.out, record)
                print(
                    f"c={concurrency:>2}: {result['rows_per_s']} requests/s, "
                    f"{result.get('rows_per_server_cpu_s')} per server CPU-s",
                    flush=True,
                )


def render(records: list[dict], peers: list[dict] | None = None) -> str:
    """RESULTS.md's section: the floor per concurrency and the bound it puts on the target."""
    run = [r for r in records if r["run"] == records[-1]["run"]]
    ceilings = [r for r in peers or [] if r.get("kind") == "ceiling" and r.get("rows_per_cpu_s")]
    ceilings = [r for r in ceilings if r["run"] == ceilings[-1]["run"]] if ceilings else []
    lines = [
        "## The HTTP floor under the peers' efficiency target (`http_floor`)",
        "",
        f"Records: `benchmarks/results/http_floor.jsonl`, {date_span(run)}, on "
        f"{run[-1]['cpus']} CPUs ({run[-1]['cpu_model']}). listserve's HTTP stack (uvicorn, "
        "its middleware, its request and response models) answering `/predict` without a "
        "model, one sst-2 sentence per request, closed loop. Command:",
        "",
        f"    {run[-1]['command']}",
        "",
        "| concurrency | requests/s | p50 / p99 ms | requests / server CPU-s | load avg |",
        "|---:|---:|---|---:|---|",
    ]
    for r in sorted(run, key=lambda r: r["concurrency"]):
        lines.append(
            f"| {r['concurrency']} | {r['rows_per_s']} | {r['p50_ms']} / {r['p99_ms']} | "
            f"{r.get('rows_per_server_cpu_s')} | {r['load_avg_start']}, {r['load_avg_end']} |"
        )
    floor = max((r.get("rows_per_server_cpu_s") or 0 for r in run), default=0)
    if ceilings and floor:
        ceiling = max(r["rows_per_cpu_s"] for r in ceilings)
        bound = floor / (floor + ceiling)
        lines += [
            "",
            f"A served row costs at least the forward (the in-process ceiling of peers run "
            f"`{ceilings[-1]['run']}`: {ceiling} rows per "
            f"CPU-s, so {1000 / ceiling:.2f} ms) plus this floor ({1000 / floor:.2f} ms at its "
            f"best, {floor} requests per CPU-s). With one row per request the HTTP peak can "
            f"reach at most {floor:.0f} / ({floor:.0f} + {ceiling:.0f}) = **{bound:.2f}** of "
            "the in-process ceiling per CPU-second, however well the batcher works.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    serve_parser = sub.add_parser("serve", help="run the floor server (the benchmark does)")
    serve_parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--concurrency", type=int_list, default=[1, 16, 64])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.port)
        return
    args.argv = argv
    measure(args)
    print(render(read_records(args.out), read_records(PEERS_RESULTS)))


if __name__ == "__main__":
    main()
