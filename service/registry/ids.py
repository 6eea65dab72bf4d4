"""Opaque random identifiers: a short kind prefix (for humans reading logs) plus 96 random bits."""

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"
