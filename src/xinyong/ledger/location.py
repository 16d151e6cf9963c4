"""Where a registry lives: a DuckDB file path, or a PostgreSQL URL.

`--db` / XINYONG_DB name either. A URL (``postgresql://…`` or ``postgres://…``)
opens the registry on a PostgreSQL server (``ledger.postgres``); anything else is
a DuckDB file. Typer hands the option over as a ``Path``, which folds the URL's
``//`` into ``/``: `pg_url` restores it, so every caller may pass what it got.

The files a registry keeps beside itself (a DuckDB registry's audit chain and
principal book, the rejects reports, the published snapshot's generation marker)
need a folder: beside the DuckDB file, or for a PostgreSQL registry a local folder
named after the server and database, under XINYONG_STATE_DIR (default
``~/.local/share/xinyong``). A PostgreSQL registry keeps its audit chain and
principal book in its database (every host shares them); the folder is where they
lay before schema revision 0003 (``access.local_files`` imports them).
Stdlib only: the check fast path imports it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

_SCHEME = re.compile(r"^(postgres|postgresql)(\+psycopg)?:/+", re.IGNORECASE)


def pg_url(db: str | Path) -> str | None:
    """The PostgreSQL URL that `db` names (normalized to ``postgresql://``), or None
    for a file path."""
    text = str(db)
    match = _SCHEME.match(text)
    if match is None:
        return None
    return "postgresql://" + text[match.end() :]


def is_pg(db: str | Path) -> bool:
    return pg_url(db) is not None


def redacted(url: str) -> str:
    """The URL without its password (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def local_base(db: str | Path) -> Path:
    """The path the registry's side files are named after (``<base>.audit.jsonl``,
    ``<base>.principals.json``, …): the DuckDB file itself, or for a PostgreSQL
    registry ``<state dir>/<host>-<port>-<database>/registry`` (the folder is made)."""
    url = pg_url(db)
    if url is None:
        return Path(db)
    parts = urlsplit(url)
    host = parts.hostname or "local"
    database = parts.path.lstrip("/") or "postgres"
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{host}-{parts.port or 5432}-{database}")
    root = Path(
        os.environ.get("XINYONG_STATE_DIR")
        or Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "xinyong"
    )
    folder = root / "pg" / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "registry"


def registry_exists(db: str | Path) -> bool:
    """Whether there is something at `db` to open: a file, or a PostgreSQL URL (the
    store itself then tells a registry from an empty or foreign database)."""
    return is_pg(db) or Path(db).exists()


def display(db: str | Path) -> str:
    """`db` as a user wrote it: a PostgreSQL URL with its `//` (and without its
    password), a path as is."""
    url = pg_url(db)
    return str(db) if url is None else redacted(url)
