"""Transactions on the state every host of a PostgreSQL registry shares: the audit
chain (``audit.chain``) and the principal book (``access.principals``), in the
tables ``pgschema.SHARED_STATE`` names.

Each process keeps one pooled SQLAlchemy engine per registry (they are asked on every
request: authentication, the audit entry). A server that cannot be reached, or a
registry whose schema predates these tables, is refused with RegistryError naming
the registry and what to do (fail closed: no operation goes unaudited).

A registry whose audit or principal file from before still lies in its local folder
(``ledger.location.local_base``, before migration 0003 these lived there) is refused
until `xinyong migrate` has imported it (``access.local_files``): a chain split between a
file and the database would silently lose history.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa

from xinyong.ledger.location import redacted


@lru_cache(maxsize=1)
def _metadata() -> sa.MetaData:
    from xinyong.ledger.pgschema import metadata

    return metadata()


def table(name: str) -> sa.Table:
    """One of the registry's tables (``pgschema``), built once per process."""
    return _metadata().tables[name]


_ENGINES: dict[tuple[str, int], sa.Engine] = {}


def engine(url: str) -> sa.Engine:
    """The pooled engine for `url` (``postgresql://…``) in this process (a forked
    worker makes its own)."""
    key = (url, os.getpid())
    made = _ENGINES.get(key)
    if made is None:
        made = sa.create_engine(
            "postgresql+psycopg://" + url.removeprefix("postgresql://"),
            pool_pre_ping=True,
            connect_args={"connect_timeout": 10},
        )
        made = _ENGINES.setdefault(key, made)
    return made


@contextmanager
def transaction(url: str, what: str) -> Iterator[sa.Connection]:
    """One transaction on the registry at `url` for `what` (e.g. "the audit chain"),
    committed on exit; errors a user can cause or fix become RegistryError."""
    from xinyong.ledger.store import RegistryError, RegistryOutdated

    try:
        with engine(url).begin() as conn:
            yield conn
    except sa.exc.ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) == "42P01":  # undefined_table
            raise RegistryOutdated(
                f"{redacted(url)} has no tables for {what} (a registry from before schema "
                f"revision 0003); run `xinyong migrate --db {redacted(url)}`"
            ) from None
        raise
    except sa.exc.OperationalError as exc:
        first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else "error"
        raise RegistryError(
            f"{redacted(url)}: cannot reach the PostgreSQL registry for {what}: {first}; "
            "check --db / XINYONG_DB and that the server is running"
        ) from None


def refuse_local_file(url: str, path: Path, what: str) -> None:
    """Refuse a registry whose `what` still lies in the local file `path` (from before
    it moved into the database), naming the file and the way out."""
    from xinyong.ledger.store import RegistryOutdated

    if path.exists():
        raise RegistryOutdated(
            f"{path} holds {what} of the PostgreSQL registry {redacted(url)} from before it "
            f"moved into the database; run `xinyong migrate --db {redacted(url)}` on this "
            "host to import it (the file is kept, renamed *.imported), or move the file "
            "away if it belongs to no registry in that database"
        )
