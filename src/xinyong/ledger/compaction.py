"""Compaction: the ledger's rows rewritten in subject order (DuckDB registries).

A replay (``engine/compiled.py``, ``_load_inputs``) and a subject's report read one
subject's records. Imports append rows in the order the sources sent them, so every
row group of ``records`` (about 122 880 rows) spans nearly the whole range of subject
ids, and finding one subject reads the ``subject_id`` column of the whole ledger:
230-280 ms at 13 M records, whatever form the filter takes. Rewritten in subject
order, each row group holds a narrow range of ids, and DuckDB skips every row group
whose min/max cannot hold the subject (its zone maps).

The content does not change: the same rows with the same values, in another
physical order (the ledger has no order of its own: queries order by their
columns). It is one transaction: a killed process leaves the ledger as it was.
Before it commits, the rows are counted and fingerprinted on both sides; a
difference rolls back. Rows imported later are appended at the end, in a few row
groups that are read whole, until the next compaction.

A registry on PostgreSQL has no use for it: its index on ``subject_id`` finds a
subject's records (``pgschema``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from xinyong.catalog.vocabulary import REVOKED
from xinyong.ledger.memory import duckdb_memory
from xinyong.ledger.store import RegistryError

#: The order of the rewritten ledger: the revocations last, and within each part a
#: subject's records together, then by when they were recorded (record_id breaks
#: ties, so the order is total). A replay finds the revocations of its records by
#: ``target_record_id``, which every other row has NULL: with the revocations apart,
#: DuckDB skips every other row group for them too (at 1 M persons: 91 -> 12 ms).
ORDER = "type = $revoked, subject_id, recorded_at, record_id"

# The envelope and the canonical attributes of every row (the typed attr_* columns are
# derived from them at intake), so that a lost, doubled or changed row changes it.
_FINGERPRINT = (
    "SELECT count(*), sum(hash(record_id, subject_id, type, occurred_at, recorded_at, "
    "batch_id, content_hash, attributes)) FROM records"
)


#: ``meta`` key: the last batch the ledger held when it was last compacted. Rows reach
#: ``records`` only in batches, so with no batch since, it is still in order.
_MARK = "compacted_through_batch"


@dataclass(frozen=True)
class Compaction:
    records: int
    row_groups_before: int
    row_groups_after: int
    seconds: float
    #: False: nothing was imported since the last compaction, nothing to rewrite.
    rewritten: bool = True


def _row_groups(con: Any) -> int:
    row = con.execute(
        "SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('records')"
    ).fetchone()
    return int(row[0]) if row else 0


def compact(store: Any) -> Compaction:
    """Rewrite ``records`` in subject order (``ORDER``), in one transaction."""
    if getattr(store, "backend", "duckdb") != "duckdb":
        raise RegistryError(
            "compaction is for a DuckDB registry; on PostgreSQL the index on "
            "records.subject_id finds a subject's records"
        )
    if getattr(store, "read_only", False):
        raise RegistryError(f"{store.path} is open read-only; it cannot be compacted")
    con = store.sql
    started = time.perf_counter()
    with duckdb_memory(con, "XINYONG_EVAL_MEMORY"):
        groups = _row_groups(con)
        con.execute("BEGIN TRANSACTION")
        try:
            batch = con.execute("SELECT max(batch_id) FROM batches").fetchone()
            through = None if batch is None or batch[0] is None else str(batch[0])
            mark = con.execute("SELECT value FROM meta WHERE key = ?", [_MARK]).fetchone()
            if through is not None and mark is not None and mark[0] == through:
                con.execute("ROLLBACK")
                row = con.execute("SELECT count(*) FROM records").fetchone()
                return Compaction(
                    records=int(row[0]) if row else 0,
                    row_groups_before=groups,
                    row_groups_after=groups,
                    seconds=time.perf_counter() - started,
                    rewritten=False,
                )
            before = con.execute(_FINGERPRINT).fetchone()
            last = con.execute("SELECT max(rowid) FROM records").fetchone()
            # New rows are appended after every existing one, whose row ids are at
            # most `last`; the old rows are then deleted by that bound.
            con.execute(
                f"INSERT INTO records SELECT * FROM records ORDER BY {ORDER}", {"revoked": REVOKED}
            )
            if last is not None and last[0] is not None:
                con.execute("DELETE FROM records WHERE rowid <= ?", [last[0]])
            after = con.execute(_FINGERPRINT).fetchone()
            if after != before:
                raise RegistryError(
                    f"compaction of {store.path} would change the ledger ({before} rows and "
                    f"fingerprint before, {after} after); nothing was changed"
                )
            if through is not None:
                con.execute(
                    "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                    "SET value = excluded.value",
                    [_MARK, through],
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("CHECKPOINT")
    return Compaction(
        records=int(before[0]) if before else 0,
        row_groups_before=groups,
        row_groups_after=_row_groups(con),
        seconds=time.perf_counter() - started,
    )
