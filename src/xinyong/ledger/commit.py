"""Committing a validated batch: its accepted rows and its `batches` row in ONE
transaction (all or nothing, also when the process is killed)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from xinyong.ledger.duplicates import duplicates_and_revocations
from xinyong.ledger.readers import Reject
from xinyong.ledger.store import Store, record_columns, registered


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


#: test hook: called inside the write transaction, before COMMIT
_before_commit: Callable[[], None] | None = None


def commit_batch(
    store: Store,
    rejects: list[Reject],
    rows: int,
    *,
    file: str | None,
    strict: bool,
    stamp: datetime,
    stage: Callable[[str], None],
) -> ImportResult:
    con = store.sql
    invalid = con.execute(
        "SELECT _row, record_id, err_field, err_reason FROM _xin_v WHERE err_field IS NOT NULL"
    ).fetchall()
    for row, rid, fld, reason in invalid:
        rejects.append(Reject(rid, int(row), fld, reason))

    stage("duplicates")
    con.execute("BEGIN TRANSACTION")
    try:
        excluded, duplicates = duplicates_and_revocations(con, rejects)
        rejects.sort(key=lambda r: r.row)
        accepted = rows - len(invalid) - len(excluded)
        result = ImportResult(
            accepted=accepted,
            duplicates=duplicates,
            rejected=len(rejects),
            rejects=rejects,
            recorded_at=stamp,
        )
        if strict and rejects:
            con.execute("ROLLBACK")
            result.accepted = 0
            result.refused = True
            return result
        if accepted == 0:
            con.execute("ROLLBACK")
            return result
        stage("writing")
        row = con.execute("SELECT coalesce(max(batch_id), 0) + 1 FROM batches").fetchone()
        batch_id = int(row[0]) if row else 1
        cols = list(record_columns())
        select = ", ".join(
            "CAST($stamp AS TIMESTAMP)"
            if c == "recorded_at"
            else "CAST($batch AS BIGINT)"
            if c == "batch_id"
            else f"v.{c}"
            for c in cols
        )
        where = "v.err_field IS NULL"
        ex = pa.table({"_row": pa.array(sorted(excluded), pa.int64())})
        if excluded:
            where += " AND v._row NOT IN (SELECT _row FROM _xin_ex)"
        with registered(con, _xin_ex=ex):
            con.execute(
                f"INSERT INTO records ({', '.join(cols)}) SELECT {select} FROM _xin_v v "
                f"WHERE {where}",
                {"stamp": stamp, "batch": batch_id},
            )
        con.execute(
            "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)",
            [batch_id, file, stamp, accepted, duplicates, len(rejects)],
        )
        if _before_commit is not None:
            _before_commit()
        con.execute("COMMIT")
    except BaseException:
        with suppress(Exception):  # already rolled back
            con.execute("ROLLBACK")
        raise
    result.batch_id = batch_id
    return result
