"""`listserve worker`: a Celery training worker, same as `celery -A worker worker -Q training`."""

import argparse


def add_worker_command(subparsers: argparse._SubParsersAction) -> None:
    worker = subparsers.add_parser(
        "worker", help="run a Celery training worker for LISTSERVE_BROKER_URL"
    )
    worker.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="jobs at once; each process holds its own backbone (default 1, e.g. one per GPU)",
    )
    worker.add_argument(
        "--pool",
        choices=("prefork", "solo"),
        default="prefork",
        help="prefork (default) runs jobs in a child process, with time limits and crash "
        "isolation; solo runs them in this process",
    )
    worker.add_argument(
        "--queues", help="comma-separated queues (default LISTSERVE_TRAINING_QUEUE, training)"
    )
    worker.add_argument("--hostname", help="worker node name (default celery@<host>)")
    worker.set_defaults(handler=run_worker)


def run_worker(args: argparse.Namespace) -> int:
    from worker.celery_app import default_app
    from worker.settings import CelerySettings

    settings = CelerySettings()
    try:
        app = default_app()
    except RuntimeError as error:
        raise SystemExit(str(error)) from error
    argv = [
        "worker",
        f"--queues={args.queues or settings.training_queue}",
        f"--concurrency={args.concurrency}",
        f"--pool={args.pool}",
        f"--loglevel={settings.log_level}",
        # Worker-to-worker sync (revokes, clocks) is unused: the registry coordinates jobs.
        "--without-gossip",
        "--without-mingle",
    ]
    if args.hostname:
        argv.append(f"--hostname={args.hostname}")
    app.worker_main(argv)
    return 0
