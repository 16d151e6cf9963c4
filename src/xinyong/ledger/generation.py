"""The registry's generation marker: a file ``<registry>.generation`` beside it.

Every change to what the registry answers (a committed batch, a purge, a licence
binding, an installed pack) writes a new token into it *before* its COMMIT, so
that a published snapshot (``checks/snapshot.py``), which records the token it
was made under, stops answering at once: a reader that sees the old token with
the new data cannot happen, one that sees the new token with the old data only
falls back to the registry. Written to a temporary file and renamed
(``os.replace``), so a reader never sees half a token. Stdlib only: the fast
path reads it without importing DuckDB.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from xinyong.ledger.location import is_pg


def marker(db: str | Path) -> Path:
    return Path(f"{db}.generation")


def current(db: str | Path) -> str | None:
    """The registry's generation token (None: no marker, e.g. an in-memory store)."""
    try:
        return marker(db).read_text().strip() or None
    except OSError:
        return None


def advance(db: str | Path) -> str | None:
    """A new generation token (nothing for an in-memory store, nor for a registry on
    PostgreSQL: it publishes no snapshot; its readers ask the database)."""
    if str(db) == ":memory:" or is_pg(db):
        return None
    token = uuid.uuid4().hex
    path = marker(db)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(token + "\n")
    os.replace(tmp, path)
    return token
