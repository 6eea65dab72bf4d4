"""Serving beside real peers: listserve, Infinity and SetFit on one model, texts and load.

    python -m benchmarks.peers run --workdir /tmp/peers --duration 5 --warmup 2
    python -m benchmarks.peers table [--run RUN]

Every server gets the offline all-MiniLM-L6-v2, alone on the machine in turn, driven over
loopback by a load-generator process (`harness/peer_load.py`: closed loop, one sst-2 test
sentence per request, concurrency 1, 16 and 64, a warm-up and a measured phase bounded in time
and requests) while its RSS is sampled (`harness/rss.py`):

- `listserve`: `listserve serve` (mixed batching) on a registry seeded with 1,024 MiniLM task
  adapters (`harness/seeding.py`), its `/predict` over 1, 32 and 1,024 of them: every row runs
  through its own task's adapters and head;
- `infinity-torch`, `infinity-onnx`: Infinity's HTTP server (dynamic batching) returning the same
  model's embeddings with its default torch engine and its ONNX (optimum) engine, from an
  environment of its own (`harness/infinity_env.py` says why): strictly less work per row;
- `setfit`: a FastAPI process holding one SetFit model per task, `model.predict` per request,
  over 1 and 16 tasks (`harness/setfit_peer.py`).

Then the in-process ceiling of listserve's served forward (`harness/forward_ceiling.py`) in its
own process. One record per point to results/peers.jsonl, with the machine's load average at
the start and end of each point (the machine may be shared); `table` renders the newest run and
its targets (`harness/peer_targets.py`).
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.harness import peer_targets
from benchmarks.harness.arguments import add_batching_arguments, choice_list, int_list
from benchmarks.harness.backbones import resolve_backbone
from benchmarks.harness.peer_load import Target, drive
from benchmarks.harness.peer_servers import OFFLINE_ENV, http_server
from benchmarks.harness.records import (
    REPO_ROOT,
    RESULTS_DIR,
    append_record,
    cpu_model,
    date_span,
    git_commit,
    load_avg,
    read_records,
    utc_now,
)
from benchmarks.harness.rss import RssSampler
from benchmarks.harness.server import free_port, server
from benchmarks.harness.sweep import fits_cache, warm_store

RESULTS = RESULTS_DIR / "peers.jsonl"
PEERS = ("listserve", "infinity-torch", "infinity-onnx", "setfit")
ENGINES = {"infinity-torch": "torch", "infinity-onnx": "optimum"}


def accelerator(device: str) -> str | None:
    """The GPU's name when the servers run on CUDA (None on a CPU)."""
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.get_device_name(torch.device(device)) if torch.cuda.is_available() else None


def server_device(args: argparse.Namespace) -> str:
    """The device `--server-env LISTSERVE_DEVICE=...` gives listserve (the harness's `cpu`
    otherwise); the SetFit server and the ceiling use the same."""
    chosen = dict(pair.split("=", 1) for pair in args.server_env)
    return chosen.get("LISTSERVE_DEVICE", "cpu")


def measure(
    target: Target, pid: int, point: dict, args: argparse.Namespace, context: dict
) -> dict | None:
    """One point: its load generator in its own process while the server's RSS is sampled;
    the record is appended at once. A failed point is reported and skipped."""
    target_file = target.save(args.workdir / f"target-{os.getpid()}.json")
    command = [
        sys.executable, "-m", "benchmarks.peers", "loadgen",
        "--target", str(target_file),
        "--server-pid", str(pid),
        "--concurrency", str(point["concurrency"]),
        "--duration", str(args.duration),
        "--warmup", str(args.warmup),
        "--max-requests", str(args.max_requests),
    ]  # fmt: skip
    if point.get("prewarmed"):
        command.append("--prewarm")
    load_before = load_avg()
    try:
        with RssSampler(pid) as rss:
            completed = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=args.duration + args.warmup + 300,
                check=False,
            )
        if completed.returncode != 0:
            raise RuntimeError(f"load generator failed: {completed.stderr[-2000:]}")
        result = json.loads(completed.stdout.strip().splitlines()[-1])
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
        print(f"point {point} failed, skipped: {error}", flush=True)
        return None
    record = {
        "benchmark": "peers",
        "kind": "point",
        **point,
        **result,
        "rss_mb": rss.peak_mb,
        "rss_median_mb": rss.median_mb,
        "rss_anon_mb": rss.anon_peak_mb,
        "rss_file_mb": rss.file_median_mb,
        "load_avg_start": load_before,
        "load_avg_end": load_avg(),
        **context,
        "date": utc_now(),
    }
    append_record(args.out, record)
    print(
        f"{point['peer']:>15} tasks={point.get('tasks')} c={point['concurrency']:>2}: "
        f"{result['rows_per_s']} rows/s p50={result['p50_ms']} p99={result['p99_ms']} "
        f"rss={rss.median_mb}MB load={load_before}->{record['load_avg_end']}",
        flush=True,
    )
    return record


def run_listserve(manifest: dict, args: argparse.Namespace, context: dict) -> None:
    """One `listserve serve`, every task count and concurrency against it in turn."""
    workdir = args.workdir / "listserve"
    with server(workdir, manifest, "mixed", args) as (url, pid):
        for tasks in args.listserve_tasks:
            prewarmed = fits_cache(tasks, manifest, args)
            warm_store(workdir)
            chosen = manifest["tasks"][:tasks]
            target = Target(
                url, "/predict/{task}", chosen, auth=manifest["api_key"], listserve=True
            )
            for concurrency in args.concurrency:
                point = {"peer": "listserve", "tasks": tasks, "concurrency": concurrency,
                         "prewarmed": prewarmed}  # fmt: skip
                measure(target, pid, point, args, context)


def run_infinity(peer: str, python: Path, model_dir: Path, args, context: dict) -> None:
    """Infinity's server with one engine, from its own environment."""
    from benchmarks.harness.infinity_env import infinity_command

    port = free_port()
    env = {**os.environ, **OFFLINE_ENV, "HF_HOME": str(args.workdir / "infinity-hf")}
    env.pop("VIRTUAL_ENV", None)
    if args.torch_threads:
        env["OMP_NUM_THREADS"] = str(args.torch_threads)
    command = infinity_command(python, ENGINES[peer], port, server_device(args))
    log = args.workdir / f"server-{peer}.log"
    url = f"http://127.0.0.1:{port}"
    with http_server(command, env, log, f"{url}/health", cwd=model_dir) as pid:
        target = Target(url, "/embeddings", texts_key="input", extra={"model": "minilm"})
        for concurrency in args.concurrency:
            point = {"peer": peer, "tasks": None, "concurrency": concurrency}
            measure(target, pid, point, args, context)


def run_setfit(models_dir: Path, args: argparse.Namespace, context: dict) -> None:
    """The SetFit server over each task count, one process per count."""
    for tasks in args.setfit_tasks:
        port = free_port()
        command = [
            sys.executable, "-m", "benchmarks.harness.setfit_server",
            "--models", str(models_dir), "--tasks", str(tasks),
            "--device", server_device(args), "--port", str(port),
        ]  # fmt: skip
        env = {**os.environ, **OFFLINE_ENV}
        if args.torch_threads:
            env["OMP_NUM_THREADS"] = str(args.torch_threads)
        url = f"http://127.0.0.1:{port}"
        log = args.workdir / f"server-setfit-{tasks}.log"
        with http_server(command, env, log, f"{url}/health", cwd=REPO_ROOT) as pid:
            target = Target(url, "/predict/{task}", [f"task-{i}" for i in range(tasks)])
            for concurrency in args.concurrency:
                point = {"peer": "setfit", "tasks": tasks, "concurrency": concurrency}
                measure(target, pid, point, args, context)


def run_ceiling(args: argparse.Namespace, context: dict) -> None:
    """The in-process ceiling in its own process, with the servers' settings and threads."""
    env = {**os.environ, **OFFLINE_ENV, "LISTSERVE_DEVICE": server_device(args)}
    env.update(pair.split("=", 1) for pair in args.server_env)
    if args.torch_threads:
        env["OMP_NUM_THREADS"] = str(args.torch_threads)
    command = [
        sys.executable, "-m", "benchmarks.peers", "ceiling",
        "--sizes", ",".join(map(str, args.ceiling_sizes)),
        "--distinct", str(args.ceiling_distinct),
        "--seconds", str(args.duration),
        "--device", server_device(args),
    ]  # fmt: skip
    load_before = load_avg()
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        print(f"ceiling failed, skipped: {completed.stderr[-2000:]}", flush=True)
        return
    for result in json.loads(completed.stdout.strip().splitlines()[-1]):
        record = {"benchmark": "peers", "kind": "ceiling", "peer": "listserve-in-process",
                  **context, **result, "load_avg_start": load_before,
                  "load_avg_end": load_avg(), "date": utc_now()}  # fmt: skip
        append_record(args.out, record)
        print(f"ceiling {result['batch_rows']}-row batches: {result['rows_per_s']} rows/s")


def prepare(args: argparse.Namespace, backbone_path: str) -> dict[str, Callable[[], None]]:
    """Everything each peer needs before any is measured (seeded registry, Infinity's
    environment and ONNX file, trained SetFit models), so measuring runs back to back. A peer
    that cannot be prepared is recorded as skipped, with why."""
    from benchmarks.harness.seeding import load_or_seed

    runs: dict[str, Callable[[], None]] = {}
    context = run_context(args)
    for peer in args.peers:
        try:
            if peer == "listserve":
                needed = max(args.listserve_tasks)
                manifest = load_or_seed(args.workdir / "listserve", backbone_path, needed)
                runs[peer] = lambda m=manifest: run_listserve(m, args, context)
            elif peer in ENGINES:
                from benchmarks.harness.infinity_env import (
                    ensure_infinity_env,
                    export_onnx,
                    infinity_version,
                )

                python = ensure_infinity_env(args.workdir / "infinity-venv")
                model_dir = export_onnx(python, Path(backbone_path), args.workdir / "minilm-onnx")
                context["infinity_emb"] = infinity_version(python)
                runs[peer] = lambda p=peer, py=python, d=model_dir: run_infinity(
                    p, py, d, args, context
                )
            elif peer == "setfit":
                from benchmarks.harness.setfit_peer import train_models

                models_dir = args.workdir / "setfit-models"
                train_models(backbone_path, models_dir, max(args.setfit_tasks))
                context["setfit"] = package_version("setfit")
                runs[peer] = lambda d=models_dir: run_setfit(d, args, context)
        except (ImportError, OSError, RuntimeError, subprocess.CalledProcessError) as error:
            reason = f"{type(error).__name__}: {error}"
            if isinstance(error, subprocess.CalledProcessError) and error.stderr:
                reason += f" {str(error.stderr)[-500:]}"
            print(f"{peer} cannot run here, skipped: {reason}", flush=True)
            append_record(args.out, {"benchmark": "peers", "kind": "skipped", "peer": peer,
                                     "reason": reason, **context, "date": utc_now()})  # fmt: skip
    if args.ceiling:
        runs["ceiling"] = lambda: run_ceiling(args, context)
    return runs


def package_version(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def run_context(args: argparse.Namespace) -> dict:
    """What every record of the run carries besides its point."""
    device = server_device(args)
    return {
        "run": args.run_id,
        "commit": git_commit(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "device": device,
        "gpu": accelerator(device),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "max_requests": args.max_requests,
        "max_batch_rows": args.max_batch_rows,
        "max_wait_ms": args.max_wait_ms,
        "cache_budget_mb": args.cache_mb,
        "torch_threads": args.torch_threads,
        "server_env": args.server_env,
        "command": "python -m benchmarks.peers " + " ".join(sys.argv[1:]),
    }


def run(args: argparse.Namespace) -> None:
    """The `run` command: prepare every peer, then measure each alone, then the ceiling."""
    started = time.time()
    backbone_path = resolve_backbone(None)
    with tempfile.TemporaryDirectory(prefix="listserve-peers-") as tmp:
        args.workdir = (args.workdir or Path(tmp)).resolve()
        args.workdir.mkdir(parents=True, exist_ok=True)
        runs = prepare(args, backbone_path)
        print(f"prepared {sorted(runs)} in {time.time() - started:.0f}s", flush=True)
        for name, measure_peer in runs.items():
            try:
                measure_peer()
            except RuntimeError as error:
                print(f"{name} failed, skipped: {error}", flush=True)
    print(f"peers run finished in {(time.time() - started) / 60:.1f} min", flush=True)
    print(render(read_records(args.out), args.run_id))


def run_loadgen(args: argparse.Namespace) -> None:
    """The `loadgen` command: drive one server for one point and print its result as JSON."""
    target = Target.load(args.target)
    result = asyncio.run(
        drive(
            target,
            args.concurrency,
            args.warmup,
            args.duration,
            args.max_requests,
            server_pid=args.server_pid,
            prewarmed=args.prewarm,
        )
    )
    print(json.dumps(result))


def run_ceiling_command(args: argparse.Namespace) -> None:
    from benchmarks.harness.forward_ceiling import measure_ceiling

    results = measure_ceiling(
        resolve_backbone(None), args.sizes, args.distinct, args.seconds, args.device
    )
    print(json.dumps(results))


def threads(ceiling: dict) -> str:
    """`2 model threads x 1 torch thread` (records before the fix name no torch threads)."""
    torch_threads = ceiling.get("torch_threads")
    text = f"{ceiling['model_threads']} model threads"
    return text + (f" x {torch_threads} torch threads" if torch_threads else "")


def newest_run(records: list[dict]) -> str | None:
    runs = [r["run"] for r in records if r.get("benchmark") == "peers" and r.get("run")]
    return runs[-1] if runs else None


def render(records: list[dict], run_id: str | None = None) -> str:
    """RESULTS.md's section: one run's points, RSS per task, ceiling and targets."""
    run_id = run_id or newest_run(records)
    mine = [r for r in records if r.get("run") == run_id]
    if not mine:
        return ""
    first = mine[0]
    load = [r[key] for r in mine for key in ("load_avg_start", "load_avg_end") if key in r]
    where = first["gpu"] or f"{first['cpus']} CPUs ({first['cpu_model']})"
    versions = ", ".join(
        f"{name} {first[name]}" for name in ("infinity_emb", "setfit") if first.get(name)
    )
    lines = [
        f"## Serving beside peers (`peers`), run `{run_id}`",
        "",
        f"Records: `benchmarks/results/peers.jsonl`, {date_span(mine)}, commit "
        f"`{first['commit'][:7]}`, on {where}; 1-minute load average {min(load):.2f}-"
        f"{max(load):.2f} during the run (2 cores: above 2 means others were computing too). "
        "The offline all-MiniLM-L6-v2 in every server, each alone in turn; one sst-2 test "
        f"sentence per request, closed loop, {first['warmup_s']} s warm-up + "
        f"{first['duration_s']} s measured per point"
        + (f"; {versions}" if versions else "")
        + ". Command:",
        "",
        f"    {first['command']}",
        "",
        "| peer | tasks | conc. | rows/s | p50 / p99 ms | RSS MB (median) | rows / server CPU-s |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in (r for r in mine if r["kind"] == "point"):
        lines.append(
            f"| {r['peer']} | {r['tasks'] if r['tasks'] is not None else '-'} | "
            f"{r['concurrency']} | {r['rows_per_s']} | {r['p50_ms']} / {r['p99_ms']} | "
            f"{r['rss_median_mb']} | {r.get('rows_per_server_cpu_s')} |"
        )
    for r in (r for r in mine if r["kind"] == "skipped"):
        lines += ["", f"- `{r['peer']}` not measured: {r['reason']}"]
    ceilings = [r for r in mine if r["kind"] == "ceiling"]
    if ceilings:
        lines += [
            "",
            "In-process ceiling of the served forward (tokenizer call + `forward_encoded`, "
            f"{ceilings[0]['precision']}, {threads(ceilings[0])}, rows over distinct adapters; "
            "rows/s and, where recorded, rows per CPU-s): "
            + ", ".join(
                f"{r['batch_rows']} rows {r['rows_per_s']}/s"
                + (f" ({r['rows_per_cpu_s']}/CPU-s)" if r.get("rows_per_cpu_s") else "")
                for r in ceilings
            )
            + ".",
        ]
    lines += ["", "### Targets", ""]
    for verdict in peer_targets.verdicts(mine):
        state = {True: "met", False: "**missed**", None: "not measured"}[verdict.met]
        lines.append(f"- {verdict.name}: {state} ({verdict.text}).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    sweep = commands.add_parser("run", help="prepare and measure every peer, then the ceiling")
    sweep.add_argument("--peers", type=choice_list(PEERS), default=list(PEERS))
    sweep.add_argument("--listserve-tasks", type=int_list, default=[1, 32, 1024])
    sweep.add_argument("--setfit-tasks", type=int_list, default=[1, 16])
    sweep.add_argument("--concurrency", type=int_list, default=[1, 16, 64])
    sweep.add_argument("--duration", type=float, default=5.0, help="measured seconds per point")
    sweep.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per point")
    sweep.add_argument("--max-requests", type=int, default=5000, help="cap per phase")
    sweep.add_argument("--cache-mb", type=float, default=256.0, help="listserve adapter cache")
    add_batching_arguments(sweep)
    sweep.add_argument("--torch-threads", type=int, default=None)
    sweep.add_argument(
        "--server-env", action="append", default=[], help="KEY=VALUE for listserve's server"
    )
    sweep.add_argument("--ceiling-sizes", type=int_list, default=[1, 8, 16, 32])
    sweep.add_argument("--ceiling-distinct", type=int, default=32, help="adapters per batch")
    sweep.add_argument("--no-ceiling", dest="ceiling", action="store_false")
    sweep.add_argument("--run-id", default=time.strftime("peers-%Y%m%dT%H%M%S"))
    sweep.add_argument("--out", type=Path, default=RESULTS)
    sweep.add_argument("--workdir", type=Path, default=None, help="keep/reuse what is prepared")
    sweep.set_defaults(handler=run)

    table = commands.add_parser("table", help="print a run's section (default: the newest)")
    table.add_argument("--run", default=None)
    table.add_argument("--out", type=Path, default=RESULTS)
    table.set_defaults(handler=lambda args: print(render(read_records(args.out), args.run)))

    load = commands.add_parser("loadgen", help="drive one server for one point (own process)")
    load.add_argument("--target", type=Path, required=True)
    load.add_argument("--concurrency", type=int, required=True)
    load.add_argument("--duration", type=float, required=True)
    load.add_argument("--warmup", type=float, default=0.0)
    load.add_argument("--max-requests", type=int, default=5000)
    load.add_argument("--server-pid", type=int, default=None)
    load.add_argument("--prewarm", action="store_true")
    load.set_defaults(handler=run_loadgen)

    ceiling = commands.add_parser("ceiling", help="the in-process ceiling (own process)")
    ceiling.add_argument("--sizes", type=int_list, default=[1, 8, 16, 32])
    ceiling.add_argument("--distinct", type=int, default=32)
    ceiling.add_argument("--seconds", type=float, default=5.0)
    ceiling.add_argument("--device", default="cpu")
    ceiling.set_defaults(handler=run_ceiling_command)

    args = parser.parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()
