"""DuckDB's memory limit for one long piece of work (an import, an evaluation).

DuckDB's own default is 80 % of the machine's memory, and its buffer pool keeps
what it reads until that limit: an evaluation of 1 M persons peaked at 14 GiB of
a 24 GiB machine though it needed far less. Under a limit DuckDB spills its
large operators (joins, aggregates, windows, sorts) to temporary files instead.
Each kind of work has its own setting, in DuckDB's units (e.g. 512MiB, 2GB):
``XINYONG_IMPORT_MEMORY`` (default 800MiB) and ``XINYONG_EVAL_MEMORY`` (default
5GiB, or 80 % of the machine's memory where that is less). The setting belongs
to the database, shared by its connections, and is reset after the work."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

_SIZE = re.compile(r"^[0-9]+(\.[0-9]+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")

#: The settings and their defaults (None: 5 GiB capped at 80 % of the machine).
DEFAULTS: dict[str, str | None] = {"XINYONG_IMPORT_MEMORY": "800MiB", "XINYONG_EVAL_MEMORY": None}


def _machine_default() -> str:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: DuckDB's own default rules
        return "5GiB"
    return f"{min(5 * 2**30, int(total * 0.8)) // 2**20}MiB"


def limit(setting: str) -> str:
    """The limit ``setting`` names (an environment variable of ``DEFAULTS``),
    checked to be a size: it is written into a SET statement."""
    default = DEFAULTS[setting]
    value = os.environ.get(setting, "").strip() or default or _machine_default()
    if not _SIZE.match(value):
        raise ValueError(f"{setting} must be a size such as 1GiB or 512MB, not {value!r}")
    return value


@contextmanager
def duckdb_memory(con: Any, setting: str) -> Iterator[None]:
    """``limit(setting)`` as DuckDB's memory limit while the block runs, then
    DuckDB's default again (the registry sets no other limit)."""
    value = limit(setting)
    con.execute(f"SET memory_limit = '{value}'")  # checked against _SIZE
    try:
        yield
    except BaseException:
        with suppress(Exception):  # the work's own error is the one to report
            con.execute("RESET memory_limit")
        raise
    # Not suppressed: a limit left in force would starve later work in this process
    # (an evaluation after an import failed "out of memory" at the import's 1 GiB).
    con.execute("RESET memory_limit")
