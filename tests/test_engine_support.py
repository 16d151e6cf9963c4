"""Helpers for the engine tests: records straight into the ledger, packs from dicts.

(Intake is built elsewhere; these tests write the records table directly so
that they can stamp any recorded_at and need no valid identity numbers.)
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from typing import Any

import pandas as pd

from xinyong.catalog import load_catalog
from xinyong.catalog.vocabulary import attribute_column
from xinyong.ledger.store import Store, record_columns
from xinyong.packs.schema import Pack

_COUNTER = [0]


def rec(
    subject_id: str,
    type_: str,
    occurred_at: datetime,
    *,
    record_id: str | None = None,
    recorded_at: datetime | None = None,
    source_kind: str | None = None,
    subject_kind: str | None = None,
    birth_date: date | None = None,
    **attributes: Any,
) -> dict[str, Any]:
    if record_id is None:
        _COUNTER[0] += 1
        record_id = f"r{_COUNTER[0]:05d}"
    if subject_kind is None:
        subject_kind = "organization" if subject_id.startswith("O") else "person"
    if source_kind is None:
        source_kind = load_catalog().types[type_].sources[0]
    return {
        "record_id": record_id,
        "subject_id": subject_id,
        "subject_kind": subject_kind,
        "birth_date": birth_date,
        "type": type_,
        "occurred_at": occurred_at,
        "source_kind": source_kind,
        "recorded_at": recorded_at or occurred_at,
        "attributes": attributes,
    }


def insert(store: Store, records: list[dict[str, Any]], batch_id: int = 1) -> None:
    columns = record_columns()
    rows = []
    for r in records:
        row: dict[str, Any] = {c: None for c in columns}
        row.update({k: v for k, v in r.items() if k != "attributes"})
        row["source"] = f"{r['source_kind']}:test"
        row["batch_id"] = batch_id
        text = json.dumps(r["attributes"], sort_keys=True, ensure_ascii=False)
        row["attributes"] = text
        row["content_hash"] = hashlib.sha256(text.encode()).hexdigest()
        for name, value in r["attributes"].items():
            row[attribute_column(name)] = value
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(columns))
    for c in ("occurred_at", "recorded_at"):
        frame[c] = pd.to_datetime(frame[c])
    frame["birth_date"] = pd.to_datetime(frame["birth_date"]).dt.date
    store.sql.register("_incoming", frame)
    store.sql.execute("INSERT INTO records BY NAME SELECT * FROM _incoming")
    store.sql.unregister("_incoming")


def pack(meta_effective_from: str = "2000-01-01", **sections: Any) -> Pack:
    body: dict[str, Any] = {
        "meta": {
            "system": "testsys",
            "version": "1",
            "effective_from": meta_effective_from,
            "title": "test",
            "authority": "test",
            "legal_basis": "test basis",
        },
        "scope": {"record_types": [], "source_kinds": list(load_catalog().source_kinds)},
    }
    body.update(sections)
    return Pack.model_validate(body)


def rows(table: Any) -> list[dict[str, Any]]:
    """An Ibis table as sorted row dicts with Python datetimes and None for nulls."""
    frame = table.to_pandas()
    out = []
    for rec_ in frame.to_dict("records"):
        clean: dict[str, Any] = {}
        for k, v in rec_.items():
            if v is None or (not isinstance(v, str) and pd.isna(v)):
                clean[k] = None
            elif isinstance(v, pd.Timestamp):
                clean[k] = v.to_pydatetime()
            else:
                clean[k] = v
        out.append(clean)
    return sorted(out, key=lambda d: tuple(str(d[k]) for k in sorted(d)))


def norm(rows_: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows_, key=lambda d: tuple(str(d[k]) for k in sorted(d)))
