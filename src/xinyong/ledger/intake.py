"""Intake: every record is validated on the way into the ledger.

One code path for all inputs: `submit` (dicts), and `import_file` (JSON Lines,
JSON arrays, CSV, Parquet) normalize into one Arrow table, which is validated
set-wise and committed once. Each concern has its own module:

  readers     input formats -> one normalized Arrow table per chunk (text envelope
              fields; attributes JSON text, or a typed struct of catalog names)
  envelope    lookups once per distinct value: identifiers classified, occurred_at
              parsed, source kinds, record type ids
  validation  ONE DuckDB statement per chunk, whatever its record types: typed attr_
              columns, canonical attributes, content hash, first problem; its result
              staged in a DuckDB table (`stage_chunk`, the DuckDB-specific step)
  duplicates  duplicates, conflicts and revocation targets against the ledger
  commit      the accepted rows and their `batches` row in ONE transaction (all or
              nothing, also when the process is killed), the rejects report written
              before it commits. On DuckDB each chunk's rows wait in a temporary
              table (committed chunk by chunk, so DuckDB may spill them: memory does
              not grow with the file) and move into `records` in that transaction

Checks, in the order a reject reports the first failure of a record:
envelope fields; subject identifier (`catalog.identifiers`); type in the catalog;
occurred_at an ISO 8601 date or date-time; source registered; the source's kind
allowed for the type; the subject's kind allowed for the type; attributes an
object with exactly the type's attributes, of the right types, enums and ranges
(`person_id` attributes valid identity numbers); occurred_at not before the
subject's birth (persons: the date in the identity number; an organization's
registration date is not known to the registry, its code carries none);
occurred_at not after recorded_at. Record ids are non-blank printable text, no
control or bidirectional characters. Then: a record_id already in the ledger (or
earlier in the batch) with the same content is a duplicate (a no-op), with other content a conflict;
`record.revoked` must name an existing record (ledger, or earlier in the batch)
of the same source unless the revoking source is an adjudicator.

Stored rows carry canonical attributes (JSON, sorted keys, defaults applied) and
`content_hash` = the 16-byte MD5 digest (BLOB) of the canonical envelope
`{"attributes":…,"occurred_at":"YYYY-MM-DDTHH:MM:SS.ffffff" (UTC),"record_id":…,
"source":…,"subject_id":…,"type":…}` (keys sorted, no spaces, UTF-8): a compact
fingerprint (portable, e.g. PostgreSQL bytea), cheap to compute and store. It
decides nothing: duplicate vs conflict compares the canonical envelope fields
themselves (exact), so no hash collision, accidental or crafted, can turn a
conflict into a silent duplicate.

SQL text here is built only from fixed strings and catalog names (package data,
checked against a strict pattern); input values travel as Arrow tables or `?`
parameters.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any

from xinyong.catalog import load_catalog
from xinyong.ledger.commit import ImportResult, RejectsReport, commit_batch
from xinyong.ledger.envelope import prepare
from xinyong.ledger.memory import duckdb_memory
from xinyong.ledger.readers import (
    FileFormatError,
    Normalized,
    Reject,
    detect_format,
    from_records,
    read_chunks,
)
from xinyong.ledger.store import Store
from xinyong.ledger.validation import drop_stage, stage_chunk
from xinyong.timeutil import now_utc, parse_instant

__all__ = [
    "FileFormatError",
    "ImportResult",
    "Reject",
    "import_file",
    "register_source",
    "submit",
]


def register_source(store: Store, source_id: str, kind: str) -> None:
    """Register (or confirm) a source. Its kind is fixed once registered."""
    catalog = load_catalog()
    if kind not in catalog.source_kinds:
        raise ValueError(f"unknown source kind {kind!r}; one of {', '.join(catalog.source_kinds)}")
    if not isinstance(source_id, str) or not source_id.strip() or len(source_id) > 128:
        raise ValueError("source id must be 1-128 characters of text")
    if not printable_id(source_id):
        raise ValueError(
            f"source id {source_id!r} must be printable text (no control or bidirectional "
            "characters)"
        )
    row = store.sql.execute("SELECT kind FROM sources WHERE source_id = ?", [source_id]).fetchone()
    if row is not None:
        if row[0] != kind:
            raise ValueError(f"source {source_id!r} is already registered as {row[0]!r}")
        return
    store.sql.execute("INSERT INTO sources VALUES (?, ?, ?)", [source_id, kind, now_utc()])


def submit(
    store: Store,
    records: Iterable[dict[str, Any]],
    *,
    strict: bool = False,
    recorded_at: datetime | None = None,
) -> ImportResult:
    """Validate and append records given as dicts (envelopes as in CATALOG.md)."""
    with store.importing():
        stamp = _stamp(recorded_at)
        return commit_batch(
            store,
            _validated(store, [from_records(records)], stamp, _no_stage),
            file=None,
            strict=strict,
            stamp=stamp,
            stage=_no_stage,
        )


def import_file(
    store: Store,
    path: str | Path,
    *,
    strict: bool = False,
    rejects_path: str | Path | None = None,
    progress: bool = True,
    recorded_at: datetime | None = None,
    batch_rows: int | None = None,
    on_batch: Callable[[dict[str, Any]], None] | None = None,
) -> ImportResult:
    """Bulk import of a JSON Lines, JSON (an array), CSV or Parquet file, read in
    chunks (`import_chunk_rows`) so that memory stays bounded. The file is ONE batch
    committed once, whole or not at all; with `batch_rows`, every `batch_rows` rows
    are a batch committed on their own, each reported to `on_batch` as it commits
    (a rerun skips them: identical records are duplicates). Rejects go to a JSON
    Lines report (`RejectsReport`: the path given, or next to the registry named
    after the batch). Raises FileFormatError for a file that cannot be read as
    records or is over the size limit (`max_import_bytes`), ValueError for a report
    that cannot be written; both before anything is committed."""
    if batch_rows is not None and (batch_rows < 1 or strict):
        raise ValueError("batch_rows must be a positive number of rows, without strict")
    path = Path(path)
    fmt = detect_format(path)
    if not path.exists():
        raise FileFormatError(f"{path}: no such file")
    if path.is_dir():
        raise FileFormatError(f"{path} is a directory; name a file of records")
    size, limit = path.stat().st_size, max_import_bytes()
    if size > limit:
        raise FileFormatError(
            f"{path}: {size} bytes, over the import limit of {limit} bytes; split the file "
            "or raise XINYONG_MAX_IMPORT_BYTES"
        )
    report = RejectsReport.for_import(store, path, rejects_path)
    chunks = read_chunks(path, fmt, store.work, batch_rows or import_chunk_rows())
    with _Progress(progress, path.name) as prog, duckdb_memory(store.work, "XINYONG_IMPORT_MEMORY"):
        if batch_rows is None:
            with store.importing():  # from the stamp to the commit (ledger/store.py)
                stamp = _stamp(recorded_at)
                return commit_batch(
                    store,
                    _validated(store, chunks, stamp, prog.stage),
                    file=str(path),
                    strict=strict,
                    stamp=stamp,
                    stage=prog.stage,
                    report=report,
                )
        total = ImportResult()
        for chunk in chunks:
            with store.importing():
                stamp = _stamp(recorded_at)
                part = commit_batch(
                    store,
                    _validated(store, [chunk], stamp, prog.stage),
                    file=str(path),
                    strict=False,
                    stamp=stamp,
                    stage=prog.stage,
                    report=report,
                    reported=total.rejects,
                )
            done = {
                "batch_id": part.batch_id,
                "rows": part.rows,
                "accepted": part.accepted,
                "duplicates": part.duplicates,
                "rejected": part.rejected,
                "rejects_file": str(part.rejects_file) if part.rejects_file else None,
            }
            if part.batch_id is not None:  # a batch of duplicates and rejects commits nothing
                total.batches.append(done)
                if on_batch is not None:
                    on_batch(done)
            total.accepted += part.accepted
            total.duplicates += part.duplicates
            total.rejected += part.rejected
            total.rows += part.rows
            total.rejects.extend(part.rejects)
            total.recorded_at = stamp
            total.batch_id = part.batch_id or total.batch_id
            total.rejects_file = part.rejects_file or total.rejects_file
        return total


def import_chunk_rows() -> int:
    """Rows validated at a time within one import (XINYONG_IMPORT_CHUNK_ROWS, default
    250 000): bounds memory with `XINYONG_IMPORT_MEMORY`; a file is still committed
    once."""
    try:
        rows = int(os.environ.get("XINYONG_IMPORT_CHUNK_ROWS", "250000"))
    except ValueError:
        raise ValueError("XINYONG_IMPORT_CHUNK_ROWS must be a whole number of rows") from None
    if rows < 1:
        raise ValueError("XINYONG_IMPORT_CHUNK_ROWS must be at least 1")
    return rows


def printable_id(text: str) -> bool:
    """No control, format (bidirectional marks among them), private-use or line
    separator characters: the same rule as for record ids in the validation statement."""
    return not any(unicodedata.category(c) in ("Cc", "Cf", "Co", "Zl", "Zp") for c in text)


def max_import_bytes() -> int:
    """The largest file `import_file` reads (XINYONG_MAX_IMPORT_BYTES, default 16 GiB)."""
    try:
        return int(os.environ.get("XINYONG_MAX_IMPORT_BYTES", str(16 << 30)))
    except ValueError:
        raise ValueError("XINYONG_MAX_IMPORT_BYTES must be a whole number of bytes") from None


# --------------------------------------------------------------------------------------
# progress


class _Progress:
    def __init__(self, enabled: bool, label: str) -> None:
        self.enabled = enabled
        self.label = label
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[stage]}"),
                TimeElapsedColumn(),
                transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(
                f"import {self.label}", total=len(_STAGES), stage=""
            )
        return self

    def stage(self, name: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=_STAGES.index(name), stage=name)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=len(_STAGES), stage="done")
            self._progress.__exit__(None, None, None)


_STAGES = ["reading", "identifiers", "validating", "duplicates", "writing"]


def _no_stage(_name: str) -> None:
    return None


def _stamp(recorded_at: datetime | None) -> datetime:
    """recorded_at of a batch: as given (naive UTC, or converted), or now."""
    stamp = recorded_at if recorded_at is not None else now_utc()
    return parse_instant(stamp) if stamp.tzinfo is not None else stamp


def _validated(
    store: Store, chunks: Iterable[Normalized], stamp: datetime, stage: Callable[[str], None]
) -> Iterator[tuple[int, list[Reject]]]:
    """Each chunk validated by the one statement into the staging table (`STAGE`,
    read by `commit_batch` inside its transaction), with the readers' rejects; the
    number of staged rows."""
    con = store.work
    for normalized in chunks:
        stage("identifiers")
        ids, part = prepare(con, normalized.table)
        stage("validating")
        rows = stage_chunk(con, ids, part, stamp)
        del ids, part
        try:
            yield rows, list(normalized.rejects)
        finally:
            with suppress(Exception):  # gone already when the transaction rolled back
                drop_stage(con)
        stage("reading")
