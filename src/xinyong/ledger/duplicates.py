"""Duplicates, conflicts and revocation targets of a validated batch (table _xin_v),
decided against the ledger and earlier rows of the same input. Per-batch work
against the ledger is a semi-join on record_id (and on revocation targets) only."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from xinyong.catalog.vocabulary import attribute_column
from xinyong.ledger.readers import Reject
from xinyong.ledger.store import registered

REVOKED = "record.revoked"


#: The relations a ledger may be read from (`duplicates_and_revocations`'s `ledger`):
#: the records table, or (a DuckDB import) the view of it with the rows staged so far.
LEDGERS = ("records", "_xin_ledger")


def duplicates_and_revocations(
    con: Any, rejects: list[Reject], ledger: str = "records"
) -> tuple[set[int], int]:
    """Rows of _xin_v (valid so far) not to insert, and the duplicate count; adds rejects.
    `ledger`: the relation (one of `LEDGERS`) holding the ledger and the rows of the
    same input accepted so far."""
    if ledger not in LEDGERS:
        raise ValueError(f"not a ledger relation: {ledger!r}")
    excluded: set[int] = set()
    duplicates = 0
    # record_ids seen twice in this input, or already in the ledger. Same content is
    # decided on the canonical envelope itself (exact), not on content_hash.
    rows = con.execute(
        f"""
        WITH ids AS (
          SELECT record_id FROM _xin_v WHERE err_field IS NULL
          GROUP BY record_id HAVING count(*) > 1
          UNION
          SELECT DISTINCT r.record_id FROM {ledger} r
          WHERE r.record_id IN (SELECT record_id FROM _xin_v WHERE err_field IS NULL)
        )
        SELECT v._row, v.record_id, v.subject_id, v.type, v.occurred_at, v.source,
               v.attributes, l.record_id IS NOT NULL AS in_ledger,
               coalesce(l.subject_id = v.subject_id AND l.type = v.type
                        AND l.occurred_at = v.occurred_at AND l.source = v.source
                        AND l.attributes = v.attributes, false) AS same_as_ledger
        FROM _xin_v v JOIN ids USING (record_id)
        LEFT JOIN (SELECT record_id, any_value(subject_id) AS subject_id,
                          any_value(type) AS type, any_value(occurred_at) AS occurred_at,
                          any_value(source) AS source, any_value(attributes) AS attributes
                   FROM {ledger} WHERE record_id IN (SELECT record_id FROM ids)
                   GROUP BY record_id) l
          USING (record_id)
        WHERE v.err_field IS NULL ORDER BY v._row
        """
    ).fetchall()
    first: dict[str, tuple[int, tuple[Any, ...]]] = {}
    for row, rid, *content, in_ledger, same_as_ledger in rows:
        if in_ledger:
            if same_as_ledger:
                duplicates += 1
            else:
                rejects.append(
                    Reject(
                        rid,
                        row,
                        "record_id",
                        "conflict: record_id already in the ledger with other content",
                    )
                )
            excluded.add(row)
            continue
        seen = first.get(rid)
        if seen is None:
            first[rid] = (row, tuple(content))
        elif seen[1] == tuple(content):
            duplicates += 1
            excluded.add(row)
        else:
            rejects.append(
                Reject(
                    rid,
                    row,
                    "record_id",
                    f"conflict: record_id already used with other content in row {seen[0]}",
                )
            )
            excluded.add(row)

    # record.revoked: the target exists (ledger, or accepted earlier in this input) and
    # belongs to the same source unless the revoking source is an adjudicator.
    col = attribute_column("target_record_id")
    if col not in {r[0] for r in con.execute("DESCRIBE _xin_v").fetchall()}:
        return excluded, duplicates
    revs = con.execute(
        f"SELECT _row, record_id, source, source_kind, {col} FROM _xin_v "
        "WHERE err_field IS NULL AND type = ? ORDER BY _row",
        [REVOKED],
    ).fetchall()
    if not revs:
        return excluded, duplicates
    targets = pa.table({"t": pa.array(sorted({r[4] for r in revs}), pa.string())})
    with registered(con, _xin_t=targets):
        sources = dict(
            con.execute(
                f"SELECT record_id, any_value(source) FROM {ledger} "
                "WHERE record_id IN (SELECT t FROM _xin_t) GROUP BY record_id"
            ).fetchall()
        )
        batch = con.execute(
            "SELECT _row, record_id, source FROM _xin_v WHERE err_field IS NULL "
            "AND record_id IN (SELECT t FROM _xin_t) ORDER BY _row"
        ).fetchall()
    batch_rows: dict[str, list[tuple[int, str]]] = {}
    for row, rid, source in batch:
        batch_rows.setdefault(rid, []).append((row, source))
    rejected_revs: set[int] = set()
    for row, rid, source, source_kind, target in revs:
        if row in excluded:
            continue
        target_source = sources.get(target)
        if target_source is None:
            for trow, tsource in batch_rows.get(target, []):
                if trow < row and trow not in excluded and trow not in rejected_revs:
                    target_source = tsource
                    break
        if target_source is None:
            reason = f"target record {target} not found (in the ledger or earlier in this input)"
        elif target_source != source and source_kind != "adjudicator":
            reason = (
                f"target record {target} is from source {target_source}; only that source "
                "or an adjudicator may revoke it"
            )
        else:
            continue
        rejects.append(Reject(rid, row, "attributes.target_record_id", reason))
        rejected_revs.add(row)
        excluded.add(row)
    return excluded, duplicates
