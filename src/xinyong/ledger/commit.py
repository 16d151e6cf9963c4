"""Committing a validated batch: its accepted rows and its `batches` row in ONE
transaction (all or nothing, also when the process is killed). On DuckDB the rows
of each chunk are staged in a temporary table first and moved into `records` in
that transaction (`_DuckDBWriter`), so that memory does not hold the whole file."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from xinyong.ledger import generation
from xinyong.ledger.duplicates import duplicates_and_revocations
from xinyong.ledger.location import local_base
from xinyong.ledger.readers import Reject
from xinyong.ledger.store import Store, record_columns, registered, stamped_projection


@dataclass
class ImportResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejects_file: Path | None = None
    batch_id: int | None = None
    rejects: list[Reject] = field(default_factory=list)
    #: strict mode refused the whole input (nothing was written)
    refused: bool = False
    recorded_at: datetime | None = None
    #: input rows read (records and unreadable lines)
    rows: int = 0
    #: with batch_rows: each committed batch (batch_id, rows, accepted, duplicates,
    #: rejected, rejects_file)
    batches: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RejectsReport:
    """Where an import's rejects go: the path given (always written, empty when
    nothing was rejected, so no stale report stays there), or by default a file next
    to the registry named after the batch (`<registry>.batch-<id>.rejects.jsonl`;
    `<registry>.refused-<recorded_at>.rejects.jsonl` when nothing was committed),
    written only when there are rejects. Checked before anything is read, written
    before the commit: an import never commits and then fails on its report."""

    given: Path | None
    folder: Path
    stem: str

    @classmethod
    def for_import(cls, store: Store, source: Path, given: str | Path | None) -> RejectsReport:
        registry = local_base(store.path)
        if store.path == ":memory:":
            registry = source
        report = cls(Path(given) if given is not None else None, registry.parent, registry.name)
        report.check()
        return report

    def check(self) -> None:
        """ValueError, naming the path, unless the report can be written."""
        if self.given is not None:
            if self.given.is_dir():
                raise ValueError(f"--rejects {self.given} is a directory; name a file in it")
            if self.given.exists() and not os.access(self.given, os.W_OK):
                raise ValueError(f"--rejects {self.given} is not writable")
            folder, what = self.given.parent, f"--rejects {self.given}: folder"
        else:
            folder, what = self.folder, "rejects report folder"
        if not folder.is_dir():
            raise ValueError(f"{what} {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise ValueError(f"{what} {folder} is not writable; name another with --rejects")

    def write(self, rejects: list[Reject], batch_id: int | None, stamp: datetime) -> Path | None:
        if self.given is None and not rejects:
            return None
        if self.given is not None:
            target = self.given
        elif batch_id is not None:
            target = self.folder / f"{self.stem}.batch-{batch_id}.rejects.jsonl"
        else:
            target = self.folder / f"{self.stem}.refused-{stamp:%Y%m%dT%H%M%S%f}.rejects.jsonl"
        # written whole, then renamed: a reader never sees half a report
        partial = target.with_name(f".{target.name}.{os.getpid()}.part")
        try:
            with partial.open("w", encoding="utf-8") as fh:
                for rej in rejects:
                    fh.write(json.dumps(rej.as_dict(), ensure_ascii=False) + "\n")
            os.replace(partial, target)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise ValueError(f"{target}: cannot write the rejects report: {exc.strerror}") from None
        return target


#: test hook: called inside the write transaction, before COMMIT
_before_commit: Callable[[], None] | None = None


def commit_batch(
    store: Store,
    chunks: Iterable[tuple[int, list[Reject]]],
    *,
    file: str | None,
    strict: bool,
    stamp: datetime,
    stage: Callable[[str], None],
    report: RejectsReport | None = None,
    reported: list[Reject] | None = None,
) -> ImportResult:
    """Append the valid, new rows of every chunk (the number of validated rows, staged
    in `validation.STAGE` while the chunk is current, and the readers' rejects) as ONE
    batch in ONE transaction (`BatchWriter.finish` opens it on DuckDB, after every
    chunk was staged), and write the rejects report before COMMIT: a file is
    accepted whole or not at all, also when the process is killed. With strict, any
    reject refuses everything. `reported`: rejects of earlier batches of the same
    file, for a report at a path given (it holds them all)."""
    writer: BatchWriter
    if store.backend == "postgresql":
        from xinyong.ledger import postgres

        writer = postgres.BatchWriter(store)  # type: ignore[arg-type]
    else:
        writer = _DuckDBWriter(store)
    rejects: list[Reject] = []
    result = ImportResult(rejects=rejects, recorded_at=stamp)
    written: list[Path] = []

    def write_report(batch_id: int | None) -> None:
        if report is None:
            return
        everything = [*(reported or []), *rejects] if report.given is not None else rejects
        result.rejects_file = report.write(everything, batch_id, stamp)
        if result.rejects_file is not None and report.given is None:
            written.append(result.rejects_file)

    batch_id = writer.begin()
    try:
        for staged, early in chunks:
            rejects.extend(early)
            result.rows += staged + len(early)
            accepted, duplicates = writer.append(rejects, batch_id, stamp, stage)
            result.accepted += accepted
            result.duplicates += duplicates
        rejects.sort(key=lambda r: r.row)
        result.rejected = len(rejects)
        if (strict and rejects) or result.accepted == 0:
            writer.rollback()
            result.refused = bool(strict and rejects)
            result.accepted = 0
            write_report(None)
            return result
        batch_id = writer.finish(batch_id, stamp)
        store.sql.execute(
            "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)",
            [batch_id, file, stamp, result.accepted, result.duplicates, len(rejects)],
        )
        write_report(batch_id)
        # Before COMMIT: a published snapshot stops answering before the batch counts.
        generation.advance(store.path)
        if _before_commit is not None:
            _before_commit()
        writer.commit()
    except BaseException:
        with suppress(Exception):  # already rolled back
            writer.rollback()
        # a report of a batch that was not committed would mislead
        for path in written:
            path.unlink(missing_ok=True)
        raise
    result.batch_id = batch_id
    return result


class BatchWriter(Protocol):
    """What `commit_batch` asks of a backend: a batch id, each chunk's valid new rows
    (the chunk staged now) set aside, then `finish`: the batch's transaction holds all
    of its rows (its final batch id), and `commit_batch` adds the `batches` row and
    ends it."""

    def begin(self) -> int: ...

    def append(
        self, rejects: list[Reject], batch_id: int, stamp: datetime, stage: Callable[[str], None]
    ) -> tuple[int, int]: ...

    def finish(self, batch_id: int, stamp: datetime) -> int: ...

    def rollback(self) -> None: ...

    def commit(self) -> None: ...


#: The DuckDB writer's staging table (a temporary table) and its view of the ledger
#: with the rows staged so far (`duplicates.LEDGERS`).
STAGED = "_xin_staged"
LEDGER = "_xin_ledger"
_CONTENT = "record_id, subject_id, type, occurred_at, source, attributes"


class _DuckDBWriter:
    """A batch in the registry file, staged, then committed once. Each chunk's valid
    new rows are appended to a TEMPORARY table (`STAGED`) in a transaction of their
    own, so that DuckDB may spill them under the import's memory limit: memory does
    not hold the file (unlike one transaction holding every chunk's rows; the
    README's "Import" has the figures). `finish` moves them into `records` in the batch's
    ONE transaction, which `commit_batch` ends with its `batches` row. A temporary
    table belongs to this connection and is not kept in the registry file: readers
    never see staged rows, and a killed import leaves nothing behind (its rows were
    never in `records`), so a rerun accepts the whole file."""

    def __init__(self, store: Store) -> None:
        self.con = store.sql
        self.open = False

    def begin(self) -> int:
        cols = {c: t.removesuffix(" NOT NULL") for c, t in record_columns().items()}
        del cols["recorded_at"], cols["batch_id"]
        body = ", ".join(f"{c} {t}" for c, t in cols.items())  # catalog names, checked
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {STAGED} ({body})")
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW {LEDGER} AS SELECT {_CONTENT} FROM records "
            f"UNION ALL SELECT {_CONTENT} FROM {STAGED}"
        )
        return 0  # decided by `finish`, inside the batch's transaction

    def append(
        self, rejects: list[Reject], batch_id: int, stamp: datetime, stage: Callable[[str], None]
    ) -> tuple[int, int]:
        return _append(self.con, rejects, stage)

    def finish(self, batch_id: int, stamp: datetime) -> int:
        self.con.execute("BEGIN TRANSACTION")
        self.open = True
        row = self.con.execute("SELECT coalesce(max(batch_id), 0) + 1 FROM batches").fetchone()
        batch_id = int(row[0]) if row else 1
        cols = list(record_columns())
        select = stamped_projection(
            "CAST($stamp AS TIMESTAMP)", "CAST($batch AS BIGINT)", lambda c: c
        )
        self.con.execute(
            f"INSERT INTO records ({', '.join(cols)}) SELECT {select} FROM {STAGED}",
            {"stamp": stamp, "batch": batch_id},
        )
        return batch_id

    def rollback(self) -> None:
        try:
            if self.open:
                self.open = False
                self.con.execute("ROLLBACK")
        finally:
            self._drop()

    def commit(self) -> None:
        self.con.execute("COMMIT")
        self.open = False
        self._drop()

    def _drop(self) -> None:
        self.con.execute(f"DROP VIEW IF EXISTS {LEDGER}")
        self.con.execute(f"DROP TABLE IF EXISTS {STAGED}")


def _append(con: Any, rejects: list[Reject], stage: Callable[[str], None]) -> tuple[int, int]:
    """Stage the valid, new rows of _xin_v (one chunk), in a transaction of their own;
    add its rejects. Returns (accepted, duplicates)."""
    invalid = con.execute(
        "SELECT _row, record_id, err_field, err_reason FROM _xin_v WHERE err_field IS NOT NULL"
    ).fetchall()
    for row, rid, fld, reason in invalid:
        rejects.append(Reject(rid, int(row), fld, reason))
    stage("duplicates")
    # earlier chunks of the same file are staged: the ledger view holds them
    excluded, duplicates = duplicates_and_revocations(con, rejects, LEDGER)
    total = con.execute("SELECT count(*) FROM _xin_v").fetchone()
    accepted = (int(total[0]) if total else 0) - len(invalid) - len(excluded)
    if accepted == 0:
        return 0, duplicates
    stage("writing")
    cols = [c for c in record_columns() if c not in ("recorded_at", "batch_id")]
    where = "v.err_field IS NULL"
    ex = pa.table({"_row": pa.array(sorted(excluded), pa.int64())})
    if excluded:
        where += " AND v._row NOT IN (SELECT _row FROM _xin_ex)"
    with registered(con, _xin_ex=ex):
        con.execute(
            f"INSERT INTO {STAGED} SELECT {', '.join(f'v.{c}' for c in cols)} "
            f"FROM _xin_v v WHERE {where}"
        )
    return accepted, duplicates
