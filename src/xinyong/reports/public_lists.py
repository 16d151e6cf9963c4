"""The public lists (Fa Shi [2017] No. 7, Art. 6): what anyone may search.

Only lists whose pack names ``public_fields`` are public, and only those fields
are shown, read from the pack (never hard-coded here). An entry is public while
it is active at the instant asked about: one in its grace period (not started),
ended, voided or repaired is absent at once. A person's identity number is shown
masked as the public site does: the eight birth-date digits hidden
(``371082********0114``); an organization's code is published in full (Art. 6).

Field names resolve in this order: ``name`` (the subject's registered name,
``registry.name``), ``subject_id`` (masked), ``sex`` and ``age`` (from the
identity number), ``occurred_at`` / ``start_at`` / ``end_at`` (dates),
``source`` / ``court`` (the body that reported the entry), then any attribute of
the entry record; a field the registry does not hold shows as null.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from xinyong.catalog.identifiers import InvalidIdentifier, parse_subject_id
from xinyong.catalog.vocabulary import attribute_column
from xinyong.ledger.store import Store
from xinyong.packs import installed_packs
from xinyong.timeutil import age_on, local_date, now_utc


def mask(subject_id: str) -> str:
    """The public form of an identifier: a person's birth-date digits hidden."""
    if len(subject_id) == 18 and subject_id[:17].isdigit():
        try:
            if parse_subject_id(subject_id).kind == "person":
                return subject_id[:6] + "*" * 8 + subject_id[14:]
        except InvalidIdentifier:
            return subject_id[:6] + "*" * 8 + subject_id[14:]
    return subject_id


def _materialized_answers(store: Store, at: datetime) -> bool:
    """Whether the materialized run answers at ``at`` (the checks' own test of it)."""
    try:
        from xinyong.checks.questions import _fast_path
    except ImportError:  # moved: evaluating is slower but never wrong
        return False
    return bool(_fast_path(store, at, None))


def _active_entries(store: Store, systems: list[str], at: datetime) -> list[dict[str, Any]]:
    if _materialized_answers(store, at):
        cols = "system, list_id, subject_id, entry_record_id, start_at, end_at"
        rows = store.sql.execute(
            f"SELECT {cols} FROM list_entries WHERE start_at <= ? "
            "AND (end_at IS NULL OR end_at > ?)",
            [at, at],
        ).fetchall()
        names = [c.strip() for c in cols.split(",")]
        return [dict(zip(names, r, strict=True)) for r in rows if r[0] in systems]
    from xinyong.engine import evaluate

    packs = [p for p in installed_packs(store, at) if p.system in systems]
    entries = evaluate(store, packs, as_of=at).list_entries
    active = entries.filter(
        (entries.start_at <= at) & (entries.end_at.isnull() | (entries.end_at > at))
    )
    return list(
        active.select("system", "list_id", "subject_id", "entry_record_id", "start_at", "end_at")
        .to_pyarrow()
        .to_pylist()
    )


def _names(store: Store, subjects: list[str], at: datetime) -> dict[str, str]:
    if not subjects:
        return {}
    rows = store.sql.execute(
        f"SELECT subject_id, {attribute_column('name')} FROM records "
        "WHERE type = 'registry.name' AND occurred_at <= ? AND list_contains(?, subject_id) "
        "ORDER BY occurred_at",
        [at, subjects],
    ).fetchall()
    return {s: n for s, n in rows}  # the latest name wins


def _field(
    name: str, entry: dict[str, Any], record: dict[str, Any], subject_name: str | None, at: datetime
) -> Any:
    sid = entry["subject_id"]
    if name == "name":
        return subject_name
    if name == "subject_id":
        return mask(sid)
    if name in ("sex", "age"):
        try:
            parsed = parse_subject_id(sid)
        except InvalidIdentifier:
            return None
        if parsed.kind != "person":
            return None
        if name == "age":
            return age_on(parsed.birth_date, at)
        return "male" if int(sid[16]) % 2 else "female"  # GB 11643: odd = male
    if name in ("occurred_at", "start_at", "end_at"):
        value = record.get("occurred_at") if name == "occurred_at" else entry.get(name)
        return local_date(value).isoformat() if value is not None else None
    if name in ("source", "court"):
        return record.get("source")
    return record.get("attributes", {}).get(name)


def search(store: Store, text: str, *, at: datetime | None = None) -> list[dict[str, Any]]:
    """Public entries matching ``text``: part of a name, a (masked or full)
    identifier, or a public field's exact value such as a case number."""
    needle = text.strip()
    if not needle:
        raise ValueError("public search: give a name, an identifier or a case number")
    at = at or now_utc()
    public = {
        p.system: {spec.id: spec for spec in p.lists if spec.public_fields}
        for p in installed_packs(store, at)
    }
    public = {s: lists for s, lists in public.items() if lists}
    entries = [
        e
        for e in _active_entries(store, sorted(public), at)
        if e["list_id"] in public.get(e["system"], {})
    ]
    if not entries:
        return []
    record_rows = store.sql.execute(
        "SELECT record_id, occurred_at, source, attributes FROM records "
        "WHERE list_contains(?, record_id)",
        [[e["entry_record_id"] for e in entries]],
    ).fetchall()
    records = {
        rid: {"occurred_at": occ, "source": src, "attributes": json.loads(attrs)}
        for rid, occ, src, attrs in record_rows
    }
    names = _names(store, sorted({e["subject_id"] for e in entries}), at)
    try:
        full_id: str | None = parse_subject_id(needle).value
    except InvalidIdentifier:
        full_id = None
    results = []
    for e in entries:
        spec = public[e["system"]][e["list_id"]]
        record = records.get(e["entry_record_id"], {})
        name = names.get(e["subject_id"])
        fields = {f: _field(f, e, record, name, at) for f in spec.public_fields}
        masked = mask(e["subject_id"])
        hit = (
            (name is not None and needle.casefold() in name.casefold())
            or needle.upper() == masked
            or full_id == e["subject_id"]
            or any(isinstance(v, str) and v == needle for v in fields.values())
        )
        if hit:
            results.append(
                {
                    "system": e["system"],
                    "list": e["list_id"],
                    "list_name": spec.name,
                    "masked_id": masked,
                    **{k: v for k, v in fields.items() if k != "subject_id"},
                    **({"subject_id": masked} if "subject_id" in fields else {}),
                }
            )
    return sorted(results, key=lambda r: (r["system"], r["list"], r["masked_id"]))
