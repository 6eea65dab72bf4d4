"""Keyset pagination, newest first, with an opaque `after` cursor (the last id of a page)."""

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session


class UnknownCursor(LookupError):
    """`after` names no row visible to this caller."""


def newest_first_page(
    session: Session, model, query: Select, limit: int, after: str | None
) -> tuple[list, bool]:
    """Rows of `query` ordered by (created_at, id) descending, after the cursor row; has_more."""
    if after is not None:
        cursor = session.execute(
            query.with_only_columns(model.created_at, model.id).where(model.id == after)
        ).first()
        if cursor is None:
            raise UnknownCursor(after)
        created_at, cursor_id = cursor
        query = query.where(
            or_(
                model.created_at < created_at,
                and_(model.created_at == created_at, model.id < cursor_id),
            )
        )
    rows = list(
        session.scalars(query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1))
    )
    return rows[:limit], len(rows) > limit
