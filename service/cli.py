"""The `listserve` entry point: engine commands, the server-side ones, and any installed
package's commands (the `listserve.commands` entry points in pyproject.toml: `worker`).

Commands are found by entry point rather than imported so that service never imports the
`worker` package, which builds on it.
"""

import argparse
import json
import logging
from importlib.metadata import entry_points

from list_core.backbone_choice import BackboneUnavailableError
from list_core.cli import add_engine_commands
from service.remote_predict import add_server_options

COMMANDS_GROUP = "listserve.commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="listserve", description="Few-shot text classification with LiST adapters."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_engine_commands(subparsers)
    add_server_options(subparsers.choices["predict"])
    add_service_commands(subparsers)
    for entry in sorted(entry_points(group=COMMANDS_GROUP), key=lambda entry: entry.name):
        entry.load()(subparsers)
    return parser


def add_service_commands(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve", help="run the HTTP API (jobs run in-process unless LISTSERVE_BROKER_URL is set)"
    )
    serve.add_argument("--host", help="bind address (default LISTSERVE_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default LISTSERVE_PORT, 8000)")
    serve.set_defaults(handler=run_serve)

    tenant = subparsers.add_parser("tenant", help="manage tenants")
    tenant_commands = tenant.add_subparsers(dest="tenant_command", required=True)
    create = tenant_commands.add_parser("create", help="create a tenant and print its API key")
    create.add_argument("name", help="a label for humans")
    create.set_defaults(handler=run_tenant_create)


def run_serve(args: argparse.Namespace) -> int:
    from service.logs import configure_logging
    from service.process.allocator import AllocatorUnavailableError, reexec_with_allocator
    from service.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level)
    try:
        reexec_with_allocator(settings.expert.allocator)
    except AllocatorUnavailableError as error:
        raise SystemExit(f"listserve serve: {error}") from error

    import uvicorn

    from service.api.app import create_app

    uvicorn.run(
        create_app(settings),
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_config=None,
        access_log=False,
    )
    return 0


def run_tenant_create(args: argparse.Namespace) -> int:
    """Bootstrap a tenant straight in the registry (no server or admin token needed)."""
    from service.registry.db import Database
    from service.registry.tenants import create_tenant
    from service.settings import Settings

    name = args.name.strip()
    if not name:
        raise SystemExit("tenant name must not be empty")
    database = Database(Settings().database_url)
    try:
        database.migrate()
        with database.session() as session:
            tenant, secret = create_tenant(session, name)
    finally:
        database.dispose()
    print(json.dumps({"id": tenant.id, "name": tenant.name, "api_key": secret}))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except BackboneUnavailableError as error:
        # One line that names the setting and the fix; a traceback would bury it.
        raise SystemExit(f"listserve {args.command}: {error}") from None


if __name__ == "__main__":
    raise SystemExit(main())
