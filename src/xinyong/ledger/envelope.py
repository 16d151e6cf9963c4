"""Envelope lookups, once per distinct value: subject identifiers classified
(numpy, `catalog.identifiers`), occurred_at parsed (SQL, with Python for the few
forms the fast path leaves), source kinds and record type ids; taken back to the
rows in Arrow for the validation statement."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from xinyong.catalog.identifiers import (
    ADDRESS_CODE_UNKNOWN,
    InvalidIdentifier,
    classify_ids,
    parse_subject_id,
)
from xinyong.ledger.store import registered
from xinyong.ledger.validation import (
    OCC_FAST,
    OCC_SQL,
    attr_specs,
    list_sql,
    type_ids,
    typed_fields,
)
from xinyong.timeutil import parse_instant


def _dict(col: pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """(per-row indices, distinct values) of a string column."""
    enc = pc.dictionary_encode(col.combine_chunks())
    return enc.indices, enc.dictionary


def _classify(values: pa.Array) -> pa.Table:
    """sid, kind (0 invalid, 1 person, 2 organization), birth, flag, reason per distinct
    normalized identifier."""
    res = classify_ids(values)
    kind, birth, flag = res["kind"], res["birth"], res["flag"]
    reason = np.full(len(values), None, dtype=object)
    bad = np.nonzero(kind == 0)[0]
    if bad.size:
        for i, value in zip(bad, values.take(pa.array(bad)).to_pylist(), strict=True):
            try:
                sid = parse_subject_id(value)
            except InvalidIdentifier as exc:
                reason[i] = str(exc)
                continue
            # a form the fast path does not decide (should not happen); trust the reference
            kind[i] = 1 if sid.kind == "person" else 2
            birth[i] = (
                np.datetime64(sid.birth_date, "D") if sid.birth_date else np.datetime64("NaT")
            )
            flag[i] = ADDRESS_CODE_UNKNOWN in sid.flags
    return pa.table(
        {
            "sid": values,
            "kind": pa.array(kind, pa.int8()),
            "birth": pa.array(birth, pa.date32()),
            "flag": pa.array(flag, pa.bool_()),
            "reason": pa.array(reason, pa.string()),
        }
    )


def _person_attr_ids(con: Any, table: pa.Table) -> pa.Array:
    """Distinct normalized values of person_id attributes (text ones) in the batch."""
    specs = attr_specs()
    attrs = table.column("attributes")
    if pa.types.is_struct(attrs.type):  # typed: the text values of person_id fields
        flat = attrs.combine_chunks()
        got = [
            pc.utf8_upper(pc.utf8_trim(flat.field(n), characters=" "))
            for n in typed_fields(attrs.type) or ()
            if any(s.type == "person_id" for s in specs[n].values())
            and pa.types.is_string(flat.type.field(n).type)
        ]
        return pc.unique(pa.concat_arrays(got)).drop_null() if got else pa.array([], pa.string())
    parts = []
    for n, per in specs.items():
        types = [t for t, s in per.items() if s.type == "person_id"]
        if types:
            parts.append(
                f"SELECT upper(trim(try(json_extract_string(attributes, '$.\"{n}\"')))) AS sid "
                f"FROM _xin_in WHERE list_contains({list_sql(types)}, type) "
                f"AND try(json_type(attributes, '$.\"{n}\"')) = 'VARCHAR'"
            )
    if not parts:
        return pa.array([], pa.string())
    with registered(con, _xin_in=table.select(["type", "attributes"])):
        return con.execute(" UNION ".join(parts)).to_arrow_table().column(0).combine_chunks()


def _instants(con: Any, texts: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(instant, reason) per distinct occurred_at text."""
    with registered(con, _xin_occ=pa.table({"occ": texts})):
        got = con.execute(
            f"SELECT {OCC_SQL.replace('OCC_TEXT', 'occ')} AS instant, "
            "regexp_full_match(occ, ?) AS fast FROM _xin_occ",
            [OCC_FAST],
        ).to_arrow_table()
    instant = got.column("instant").combine_chunks().cast(pa.timestamp("us"))
    slow = np.nonzero(~got.column("fast").to_numpy())[0]
    reason: list[str | None] = [None] * len(texts)
    if slow.size:
        inst = instant.to_pylist()
        for i, text in zip(slow, texts.take(pa.array(slow)).to_pylist(), strict=True):
            try:
                inst[i] = parse_instant(text)
            except (ValueError, OverflowError) as exc:
                inst[i] = None
                reason[i] = str(exc)
        instant = pa.array(inst, pa.timestamp("us"))
    return instant, pa.array(reason, pa.string())


def prepare(con: Any, table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(_xin_ids: the batch's distinct normalized identifiers, subject ids and person_id
    attributes, classified; _xin_part: the input with its envelope lookups added (sid,
    sid_kind, birth_date, sid_flag, sid_reason, occurred_at, occ_reason, source_kind,
    tid: the record type's id, -1 for a missing or unknown type))."""
    cols: dict[str, Any] = {c: table.column(c) for c in table.column_names}
    cols["sid_raw"] = cols.pop("subject_id")
    cols["occ_text"] = cols.pop("occurred_at")

    idx, raw = _dict(table.column("subject_id"))
    norm = pc.utf8_upper(pc.utf8_trim(raw, characters=" "))
    ids = _classify(pc.unique(pa.concat_arrays([norm, _person_attr_ids(con, table)])))
    pos = pc.index_in(norm, value_set=ids.column("sid"))
    per_raw = ids.take(pos)
    for name, col in (
        ("sid", "sid"),
        ("sid_kind", "kind"),
        ("birth_date", "birth"),
        ("sid_flag", "flag"),
        ("sid_reason", "reason"),
    ):
        cols[name] = per_raw.column(col).take(idx)

    idx, texts = _dict(table.column("occurred_at"))
    instant, reason = _instants(con, texts)
    cols["occurred_at"] = instant.take(idx)
    cols["occ_reason"] = reason.take(idx)

    idx, sources = _dict(table.column("source"))
    with registered(con, _xin_src=pa.table({"s": sources})):
        kinds = dict(
            con.execute(
                "SELECT source_id, kind FROM sources WHERE source_id IN (SELECT s FROM _xin_src)"
            ).fetchall()
        )
    cols["source_kind"] = pa.array([kinds.get(s) for s in sources.to_pylist()], pa.string()).take(
        idx
    )

    idx, types = _dict(table.column("type"))
    known = type_ids()
    cols["tid"] = (
        pa.array([known.get(t, -1) for t in types.to_pylist()], pa.int32()).take(idx).fill_null(-1)
    )
    prepared = pa.table(cols)
    # record batches of _CHUNK rows, so that DuckDB scans them in parallel
    return ids, pa.Table.from_batches(prepared.to_batches(max_chunksize=_CHUNK), prepared.schema)


_CHUNK = 1 << 16
