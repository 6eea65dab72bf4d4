"""Alembic migrations of the registry (script location used by service.registry.migrate)."""
