"""Alembic, configured in code so migrations run from an installed package with no alembic.ini.

`upgrade_head` is what `Database.migrate` runs at start-up, on the database's own engine.
Concurrent starters are serialised: PostgreSQL takes an advisory lock, SQLite's
`BEGIN IMMEDIATE` (see db.py) holds the write lock throughout. This module works on a plain
SQLAlchemy engine and imports nothing else of the registry, so db.py can depend on it.
New revisions: `python -m service.registry.migrate revision "message"` (LISTSERVE_DATABASE_URL
set) autogenerates one against the models.
"""

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_KEY = 0x1157_5E7E  # arbitrary constant naming "listserve migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade_head(engine: Engine) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        if engine.dialect.name != "sqlite":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def main(argv: list[str]) -> int:
    """Developer helper: `revision "message"` autogenerates a migration against the models."""
    from service.settings import Settings

    if len(argv) != 2 or argv[0] != "revision":
        print('usage: python -m service.registry.migrate revision "message"', file=sys.stderr)
        return 2
    engine = create_engine(Settings().database_url)
    upgrade_head(engine)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=argv[1], autogenerate=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
