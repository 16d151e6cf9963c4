"""Intake: every record is validated on the way into the ledger.

One code path for all inputs: `submit` (dicts), and `import_file` (JSON Lines,
CSV, Parquet) normalize into one Arrow table (`readers`), which is validated
set-wise: envelope lookups once per distinct value (identifiers with numpy,
occurred_at in SQL with a Python fallback, source kinds), taken back to the rows
in Arrow; then ONE DuckDB statement for the whole batch, whatever its record types
(one plan: per-type rules are CASE branches on a type id or columns of a small
catalog table joined by it), which parses each row's attributes once (a struct of
ALL catalog attribute names as JSON text, plus the key list) and yields the typed
attr_ columns, canonical attributes, content hash and first problem together. The
accepted rows are appended in ONE transaction (one INSERT) together with their
`batches` row: all or nothing, also when the process is killed. Per-batch work
against the ledger is a semi-join on record_id (and on revocation targets) only.

Checks, in the order a reject reports the first failure of a record:
envelope fields; subject identifier (`catalog.identifiers`); type in the catalog;
occurred_at an ISO 8601 date or date-time; source registered; the source's kind
allowed for the type; the subject's kind allowed for the type; attributes an
object with exactly the type's attributes, of the right types, enums and ranges
(`person_id` attributes valid identity numbers); occurred_at not after
recorded_at. Then: a record_id already in the ledger (or earlier in the batch)
with the same content is a duplicate (a no-op), with other content a conflict;
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

import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from xinyong.catalog import load_catalog
from xinyong.catalog.identifiers import (
    ADDRESS_CODE_UNKNOWN,
    InvalidIdentifier,
    classify_ids,
    parse_subject_id,
)
from xinyong.catalog.vocabulary import AttributeSpec, attribute_column
from xinyong.ledger.readers import (
    FileFormatError,
    Normalized,
    Reject,
    detect_format,
    from_records,
    read_csv,
    read_jsonl,
    read_parquet,
)
from xinyong.ledger.store import Store, record_columns
from xinyong.timeutil import now_utc, parse_instant

__all__ = [
    "FileFormatError",
    "ImportResult",
    "Reject",
    "import_file",
    "register_source",
    "submit",
]

_NAME = re.compile(r"^[a-z_][a-z0-9_.]*$")
REVOKED = "record.revoked"


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


def register_source(store: Store, source_id: str, kind: str) -> None:
    """Register (or confirm) a source. Its kind is fixed once registered."""
    catalog = load_catalog()
    if kind not in catalog.source_kinds:
        raise ValueError(f"unknown source kind {kind!r}; one of {', '.join(catalog.source_kinds)}")
    if not isinstance(source_id, str) or not source_id.strip() or len(source_id) > 128:
        raise ValueError("source id must be 1-128 characters of text")
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
    return _ingest(
        store,
        from_records(records),
        file=None,
        strict=strict,
        recorded_at=recorded_at,
        progress=None,
    )


def import_file(
    store: Store,
    path: str | Path,
    *,
    strict: bool = False,
    rejects_path: str | Path | None = None,
    progress: bool = True,
    recorded_at: datetime | None = None,
) -> ImportResult:
    """Bulk import of a JSON Lines, CSV or Parquet file. Rejects go to a JSON Lines
    report (default `<file>.rejects.jsonl`, written only when there are rejects).
    Raises FileFormatError for a file that cannot be read as records."""
    path = Path(path)
    fmt = detect_format(path)
    if not path.exists():
        raise FileFormatError(f"{path}: no such file")
    with _Progress(progress, path.name) as prog:
        prog.stage("reading")
        if fmt == "jsonl":
            normalized = read_jsonl(path)
        elif fmt == "csv":
            normalized = read_csv(path)
        else:
            normalized = read_parquet(path, store.sql)
        result = _ingest(
            store, normalized, file=str(path), strict=strict, recorded_at=recorded_at, progress=prog
        )
    report = (
        Path(rejects_path)
        if rejects_path is not None
        else path.with_name(path.name + ".rejects.jsonl")
    )
    if result.rejects:
        with report.open("w", encoding="utf-8") as fh:
            for rej in result.rejects:
                fh.write(json.dumps(rej.as_dict(), ensure_ascii=False) + "\n")
        result.rejects_file = report
    return result


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


# --------------------------------------------------------------------------------------
# catalog as tables and SQL fragments


def _lit(text: str) -> str:
    """A SQL string literal for catalog text (package data, never input)."""
    if not _NAME.match(text):
        raise ValueError(f"unexpected catalog name {text!r}")
    return "'" + text + "'"


def _num(value: float) -> str:
    return repr(float(value))


def _lit_any(text: str) -> str:
    if "'" in text or "\\" in text:
        raise ValueError(f"unexpected catalog text {text!r}")
    return "'" + text + "'"


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _attr_specs() -> dict[str, dict[str, AttributeSpec]]:
    """attribute name -> {type name -> spec}."""
    out: dict[str, dict[str, AttributeSpec]] = {}
    for tname, rtype in load_catalog().types.items():
        for aname, spec in rtype.attributes.items():
            out.setdefault(aname, {})[tname] = spec
    return dict(sorted(out.items()))


def _type_message(spec: AttributeSpec) -> str:
    if spec.type == "integer":
        return "'must be an integer'"
    if spec.type == "number":
        return "'must be a number'"
    return "'must be text'"


def _value_sql(spec: AttributeSpec, raw: str) -> str:
    """The value of one attribute from its JSON text `raw` (DOUBLE for numbers)."""
    if spec.type in ("integer", "number"):
        return f"TRY_CAST({raw} AS DOUBLE)"
    if spec.type == "person_id":
        return f"upper(trim({raw}->>'$'))"
    return f"{raw}->>'$'"


def _check_sql(spec: AttributeSpec, raw: str, v: str) -> str:
    """The first problem (text) with a present attribute, or NULL; raw is its JSON
    text, v its value (_value_sql)."""
    if spec.type in ("string", "enum", "person_id", "date"):
        err = f"CASE WHEN NOT starts_with(CAST({raw} AS VARCHAR), '\"') THEN 'must be text'"
        err += (
            f" WHEN length({v}) > {spec.text_limit} THEN "
            f"'must be at most {spec.text_limit} characters'"
        )
        if spec.type == "date":
            err += (
                f" WHEN NOT regexp_full_match({v}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}') "
                f"OR TRY_CAST({v} AS DATE) IS NULL THEN 'must be a date YYYY-MM-DD'"
            )
        if spec.type == "enum":
            values = ", ".join(_lit(x) for x in spec.values or ())
            err += (
                f" WHEN NOT list_contains([{values}], {v}) THEN "
                f"'must be one of ' || {_lit_any(', '.join(spec.values or ()))}"
            )
        elif spec.type == "string":
            err += f" WHEN {v} = '' THEN 'must not be empty'"
        return err + " END"
    first = f"left(CAST({raw} AS VARCHAR), 1)"
    numeric = f"({first} BETWEEN '0' AND '9' OR {first} = '-')"
    if spec.type == "integer":
        err = (
            f"CASE WHEN NOT {numeric} OR {v} IS NULL OR {v} <> floor({v})"
            f" OR abs({v}) > 9.0e15 THEN 'must be an integer'"
        )
    else:
        err = f"CASE WHEN NOT {numeric} OR {v} IS NULL THEN 'must be a number'"
    if spec.min is not None:
        err += f" WHEN {v} < {_num(spec.min)} THEN 'must be ≥ {_fmt(spec.min)}'"
    if spec.exclusive_min is not None:
        err += (
            f" WHEN {v} <= {_num(spec.exclusive_min)} THEN 'must be > {_fmt(spec.exclusive_min)}'"
        )
    if spec.max is not None:
        err += f" WHEN {v} > {_num(spec.max)} THEN 'must be ≤ {_fmt(spec.max)}'"
    return err + " END"


def _default_sql(spec: AttributeSpec) -> str:
    d = spec.default
    if isinstance(d, bool) or d is None:
        raise ValueError("unsupported default")
    if isinstance(d, int | float):
        return f"CAST({_num(d)} AS DOUBLE)"
    return _lit_any(str(d))


_OCC_FAST = (
    r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}([T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?)?"
)

#: occurred_at text (OCC_TEXT) -> naive UTC instant for the forms _OCC_FAST matches
#: (a date or date-time without offset: Asia/Shanghai; Z; +hh:mm / -hh:mm); other
#: texts are parsed by Python (exact rules of timeutil). Run once per distinct text.
_OCC_SQL = f"""CASE
  WHEN regexp_full_match(OCC_TEXT, '{_OCC_FAST}') THEN CASE
    WHEN length(OCC_TEXT) = 10
      THEN CAST(TRY_CAST(OCC_TEXT AS DATE) AS TIMESTAMP) - INTERVAL 8 HOUR
    WHEN suffix(OCC_TEXT, 'Z')
      THEN TRY_CAST(substr(OCC_TEXT, 1, length(OCC_TEXT) - 1) AS TIMESTAMP)
    WHEN substr(OCC_TEXT, -6, 1) IN ('+', '-')
      THEN TRY_CAST(substr(OCC_TEXT, 1, length(OCC_TEXT) - 6) AS TIMESTAMP)
           - to_minutes(CAST((CASE WHEN substr(OCC_TEXT, -6, 1) = '-' THEN -1 ELSE 1 END)
                             * (CAST(substr(OCC_TEXT, -5, 2) AS INTEGER) * 60
                                + CAST(substr(OCC_TEXT, -2, 2) AS INTEGER)) AS BIGINT))
    ELSE TRY_CAST(OCC_TEXT AS TIMESTAMP) - INTERVAL 8 HOUR END
END"""

_ENVELOPE_ERRORS = """
      WHEN record_id IS NULL THEN ['record_id', 'missing']
      WHEN length(record_id) < 1 OR length(record_id) > 128
        THEN ['record_id', 'must be 1-128 characters']
      WHEN sid_raw IS NULL THEN ['subject_id', 'missing']
      WHEN sid_kind IS DISTINCT FROM 1 AND sid_kind IS DISTINCT FROM 2
        THEN ['subject_id', coalesce(sid_reason, 'invalid identifier')]
      WHEN type IS NULL THEN ['type', 'missing']"""

_IS_OBJECT = "starts_with(ltrim(attributes, ' ' || chr(9) || chr(10) || chr(13)), '{')"


def _list(values: Iterable[str]) -> str:
    return "[" + ", ".join(_lit(v) for v in values) + "]"


#: content_hash of an accepted row: the 16-byte MD5 digest (BLOB) of its canonical
#: envelope (subject_id, a valid identifier, is 18 characters of 0-9 and A-Z, and type
#: a catalog name: JSON text needs just quotes).
_HASH_SQL = (
    "unhex(md5('{\"attributes\":' || attributes"
    " || ',\"occurred_at\":\"' || strftime(occurred_at, '%Y-%m-%dT%H:%M:%S.%f')"
    ' || \'","record_id":\' || to_json(record_id)'
    " || ',\"source\":' || to_json(source)"
    ' || \',"subject_id":"\' || subject_id'
    ' || \'","type":"\' || type || \'"}\'))'
)

_OUT = (
    "_row, record_id, sid AS subject_id, "
    "CASE sid_kind WHEN 1 THEN 'person' WHEN 2 THEN 'organization' END AS subject_kind, "
    "birth_date, type, occurred_at, source, source_kind, "
    f"CASE WHEN sid_flag THEN '{ADDRESS_CODE_UNKNOWN}' END AS subject_flags"
)


@cache
def _type_ids() -> dict[str, int]:
    """record type -> tid (its position in the catalog); -1: missing or unknown."""
    return {t: i for i, t in enumerate(load_catalog().types)}


@cache
def _attr_bits() -> dict[str, int]:
    """attribute name -> its bit in the attribute masks (names in sorted order)."""
    names = list(_attr_specs())
    if len(names) > 62:
        raise ValueError("more than 62 attribute names: widen the attribute masks")
    return {n: i for i, n in enumerate(names)}


@cache
def _types_table() -> pa.Table:
    """Per record type (tid): allowed and required attribute masks and names, source
    kinds and subject kinds allowed (the catalog as a table, joined by tid)."""
    catalog = load_catalog()
    bits = _attr_bits()
    cols: dict[str, list[Any]] = {
        k: []
        for k in (
            "tid",
            "allowed",
            "required",
            "names",
            "required_names",
            "sources",
            "subject_kinds",
            "subject_kinds_text",
        )
    }
    for tname, tid in _type_ids().items():
        rtype = catalog.types[tname]
        names = sorted(rtype.attributes)
        req = [n for n in names if rtype.attributes[n].required]
        cols["tid"].append(tid)
        cols["allowed"].append(sum(1 << bits[n] for n in names))
        cols["required"].append(sum(1 << bits[n] for n in req))
        cols["names"].append(names)
        cols["required_names"].append(req)
        cols["sources"].append(list(rtype.sources))
        cols["subject_kinds"].append(list(rtype.subject_kinds))
        cols["subject_kinds_text"].append(", ".join(rtype.subject_kinds))
    return pa.table(
        {
            "tid": pa.array(cols["tid"], pa.int32()),
            "allowed": pa.array(cols["allowed"], pa.int64()),
            "required": pa.array(cols["required"], pa.int64()),
            "names": pa.array(cols["names"], pa.list_(pa.string())),
            "required_names": pa.array(cols["required_names"], pa.list_(pa.string())),
            "sources": pa.array(cols["sources"], pa.list_(pa.string())),
            "subject_kinds": pa.array(cols["subject_kinds"], pa.list_(pa.string())),
            "subject_kinds_text": pa.array(cols["subject_kinds_text"], pa.string()),
        }
    )


def _by_type(variants: dict[str, list[str]], *, every: bool = False) -> str:
    """`WHEN tid IN (…) THEN sql` branches, one per distinct sql (the types that share
    it). every: the caller needs no answer for types without the attribute (their rows
    never get that far), so a single variant is `WHEN true`, no test."""
    if every and len(variants) == 1:
        return f"WHEN true THEN {next(iter(variants))}"
    ids = _type_ids()
    return " ".join(
        f"WHEN tid IN ({', '.join(str(ids[t]) for t in types)}) THEN {sql}"
        for sql, types in variants.items()
    )


def _group(
    per: dict[str, AttributeSpec], make: Callable[[AttributeSpec], str | None]
) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for tname, spec in per.items():
        sql = make(spec)
        if sql is not None:
            out.setdefault(sql, []).append(tname)
    return out


@cache
def _validation_sql() -> str:
    """The set-wise validation of a whole batch in ONE statement (table _xin_part, the
    input with its envelope lookups; _xin_types, the catalog per record type; _xin_ids,
    the classified identifiers), see the module docstring. One plan for all record
    types: per-type rules are CASE branches on the type id (tid), or columns of
    _xin_types.

    The attributes are parsed once into a struct of ALL catalog attribute names as
    JSON text, plus the key list. A row whose keys are exactly non-null names allowed
    for its type, with all required among them (bit masks), takes the fast path; the
    others get the exact key checks. Each present attribute is then checked against
    its type's spec, in name order."""
    specs = _attr_specs()
    bits = _attr_bits()
    for n in specs:
        _lit(n)
    struct = "{" + ", ".join(f'"{n}": "JSON"' for n in specs) + "}"
    mask = (
        " + ".join(f"CASE WHEN j.{n} IS NOT NULL THEN {1 << bits[n]} ELSE 0 END" for n in specs)
        or "0"
    )
    fast = (
        "coalesce(len(keys) = bit_count(mask) AND (mask & allowed) = mask "
        f"AND (mask & required) = required AND (len(keys) > 0 OR {_IS_OBJECT}), false)"
    )
    values, checks, errors, typed, canon = [], [], [], [], []
    for n, per in specs.items():
        raw, v, col = f"j.{n}", f"v_{n}", attribute_column(n)
        value = _by_type(_group(per, partial(_value_sql, raw=raw)), every=True)
        default = _by_type(_group(per, lambda s: None if s.default is None else _default_sql(s)))
        values.append(f"CASE WHEN {raw} IS NOT NULL THEN CASE {value} END {default} END AS {v}")
        check = _by_type(_group(per, partial(_check_sql, raw=raw, v=v)), every=True)
        checks.append(f"CASE WHEN {raw} IS NOT NULL THEN CASE {check} END END AS e_{n}")
        message = _by_type(_group(per, _type_message), every=True)
        errors.append(
            f"WHEN e_{n} IS NOT NULL THEN ['attributes.{n}', e_{n}] "
            f"WHEN {raw} IS NULL AND NOT fast AND list_contains(keys, {_lit(n)}) "
            f"THEN ['attributes.{n}', CASE {message} END]"
        )
        int64 = {s.column_type for s in per.values()} == {"int64"}
        typed.append(
            f"CASE WHEN err IS NULL THEN {f'CAST({v} AS BIGINT)' if int64 else v} END AS {col}"
        )
        canon.append(
            f"CASE WHEN allowed & {1 << bits[n]} <> 0 THEN '\"{n}\":' || to_json({col}) END"
        )
    ids = _type_ids()
    person = {
        n: [ids[t] for t, s in per.items() if s.type == "person_id"] for n, per in specs.items()
    }
    person = {n: tids for n, tids in person.items() if tids}
    joins = " ".join(f"LEFT JOIN _xin_ids p_{n} ON p_{n}.sid = a.v_{n}" for n in person)
    person_checks = " ".join(
        f"WHEN v_{n} IS NOT NULL AND tid IN ({', '.join(map(str, tids))}) "
        f"AND p_{n}.kind IS DISTINCT FROM 1 THEN "
        f"['attributes.{n}', 'must be a valid resident identity number: ' || "
        f"coalesce(p_{n}.reason, 'a unified social credit code')]"
        for n, tids in person.items()
    )
    cross = ""
    listing = load_catalog().types.get("court.listing_decision")
    if listing is not None and {"ground", "extension_years"} <= set(listing.attributes):
        # CATALOG.md: extension only for grounds other than able_but_refuses.
        cross = (
            f"WHEN tid = {ids['court.listing_decision']} "
            "AND v_ground = 'able_but_refuses' AND v_extension_years > 0 "
            "THEN ['attributes.extension_years', "
            "'an extension applies only to grounds other than able_but_refuses']"
        )
    out_cols = (
        "_row, record_id, subject_id, subject_kind, birth_date, type, occurred_at, "
        "source, source_kind, subject_flags"
    )
    return f"""
WITH parsed AS (
  SELECT p.*, t.* EXCLUDE (tid), try(json_transform(attributes, '{struct}')) AS j,
         try(json_keys(attributes)) AS keys
  FROM _xin_part p LEFT JOIN _xin_types t USING (tid)
), pathed AS (
  SELECT *, {fast} AS fast FROM (SELECT *, {mask} AS mask FROM parsed)
), valued AS (
  SELECT *, {", ".join(values)} FROM pathed
), judged AS (
  SELECT a.*, CASE {_ENVELOPE_ERRORS}
      WHEN tid < 0 THEN ['type', 'unknown record type ' || type]
      WHEN occ_text IS NULL THEN ['occurred_at', 'missing']
      WHEN occurred_at IS NULL
        THEN ['occurred_at', coalesce(occ_reason, 'not an ISO 8601 date or date-time')]
      WHEN source IS NULL THEN ['source', 'missing']
      WHEN source_kind IS NULL THEN ['source', 'source ' || source || ' is not registered']
      WHEN NOT list_contains(sources, source_kind)
        THEN ['source', 'a ' || source_kind || ' source may not report ' || type]
      WHEN NOT list_contains(subject_kinds,
                             CASE sid_kind WHEN 1 THEN 'person' ELSE 'organization' END)
        THEN ['subject_id', type || ' applies to ' || subject_kinds_text || ' subjects only']
      WHEN fast THEN NULL
      WHEN attributes IS NULL THEN ['attributes', 'missing']
      WHEN j IS NULL OR keys IS NULL THEN ['attributes', 'not valid JSON']
      WHEN NOT {_IS_OBJECT} THEN ['attributes', 'must be an object']
      WHEN NOT list_has_all(names, keys)
        THEN ['attributes.' || list_filter(keys, k -> NOT list_contains(names, k))[1],
              'unknown attribute for ' || type]
      WHEN NOT list_has_all(keys, required_names)
        THEN ['attributes.' || list_filter(required_names, k -> NOT list_contains(keys, k))[1],
              'missing required attribute']
    END AS err1
  FROM valued a
), erred AS (
  SELECT *, {", ".join(checks)} FROM judged
), checked AS (
  SELECT a.*, CASE WHEN err1 IS NOT NULL THEN err1 {" ".join(errors)} {person_checks} {cross}
      WHEN occurred_at > $recorded_at
        THEN ['occurred_at', 'date in the future (after recorded_at '
              || strftime($recorded_at, '%Y-%m-%dT%H:%M:%SZ') || ')']
    END AS err
  FROM erred a {joins}
), typed AS (
  SELECT {_OUT}, allowed, {", ".join(typed)}, err FROM checked
), canonical AS (
  SELECT *, CASE WHEN err IS NULL THEN '{{' || concat_ws(',', {", ".join(canon)}) || '}}'
         END AS attributes FROM typed
)
SELECT {out_cols}, {", ".join(attribute_column(n) for n in specs)},
  attributes, err[1] AS err_field, err[2] AS err_reason,
  CASE WHEN err IS NULL THEN {_HASH_SQL} END AS content_hash
FROM canonical
"""


# --------------------------------------------------------------------------------------
# envelope lookups, once per distinct value (Python only for the few the fast paths fail)


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
    specs = _attr_specs()
    parts = []
    for n, per in specs.items():
        types = [t for t, s in per.items() if s.type == "person_id"]
        if types:
            parts.append(
                f"SELECT upper(trim(try(json_extract_string(attributes, '$.\"{n}\"')))) AS sid "
                f"FROM _xin_in WHERE list_contains({_list(types)}, type) "
                f"AND try(json_type(attributes, '$.\"{n}\"')) = 'VARCHAR'"
            )
    if not parts:
        return pa.array([], pa.string())
    with _registered(con, _xin_in=table.select(["type", "attributes"])):
        return con.execute(" UNION ".join(parts)).to_arrow_table().column(0).combine_chunks()


def _instants(con: Any, texts: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(instant, reason) per distinct occurred_at text."""
    with _registered(con, _xin_occ=pa.table({"occ": texts})):
        got = con.execute(
            f"SELECT {_OCC_SQL.replace('OCC_TEXT', 'occ')} AS instant, "
            "regexp_full_match(occ, ?) AS fast FROM _xin_occ",
            [_OCC_FAST],
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


def _prepare(con: Any, table: pa.Table) -> tuple[pa.Table, pa.Table]:
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
    with _registered(con, _xin_src=pa.table({"s": sources})):
        kinds = dict(
            con.execute(
                "SELECT source_id, kind FROM sources WHERE source_id IN (SELECT s FROM _xin_src)"
            ).fetchall()
        )
    cols["source_kind"] = pa.array([kinds.get(s) for s in sources.to_pylist()], pa.string()).take(
        idx
    )

    idx, types = _dict(table.column("type"))
    known = _type_ids()
    cols["tid"] = (
        pa.array([known.get(t, -1) for t in types.to_pylist()], pa.int32()).take(idx).fill_null(-1)
    )
    prepared = pa.table(cols)
    # record batches of _CHUNK rows, so that DuckDB scans them in parallel
    return ids, pa.Table.from_batches(prepared.to_batches(max_chunksize=_CHUNK), prepared.schema)


_CHUNK = 1 << 16


def _ingest(
    store: Store,
    normalized: Normalized,
    *,
    file: str | None,
    strict: bool,
    recorded_at: datetime | None,
    progress: _Progress | None,
) -> ImportResult:
    con = store.sql
    stamp = recorded_at if recorded_at is not None else now_utc()
    if stamp.tzinfo is not None:
        stamp = parse_instant(stamp)
    rejects: list[Reject] = list(normalized.rejects)
    table = normalized.table
    stage = progress.stage if progress is not None else (lambda _name: None)

    stage("identifiers")
    ids, part = _prepare(con, table)
    stage("validating")
    with _registered(con, _xin_ids=ids, _xin_part=part, _xin_types=_types_table()):
        validated = con.execute(_validation_sql(), {"recorded_at": stamp}).to_arrow_table()
    with _registered(con, _xin_v=validated):
        return _finish(
            store, rejects, table.num_rows, file=file, strict=strict, stamp=stamp, stage=stage
        )


# --------------------------------------------------------------------------------------
# the pipeline


@contextmanager
def _registered(con: Any, **tables: pa.Table) -> Iterator[None]:
    for name, table in tables.items():
        con.register(name, table)
    try:
        yield
    finally:
        for name in tables:
            con.unregister(name)


#: test hook: called inside the write transaction, before COMMIT
_before_commit: Callable[[], None] | None = None


def _finish(
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
        excluded, duplicates = _duplicates_and_revocations(con, rejects)
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
        with _registered(con, _xin_ex=ex):
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


def _duplicates_and_revocations(con: Any, rejects: list[Reject]) -> tuple[set[int], int]:
    """Rows of _xin_v (valid so far) not to insert, and the duplicate count; adds rejects."""
    excluded: set[int] = set()
    duplicates = 0
    # record_ids seen twice in this input, or already in the ledger. Same content is
    # decided on the canonical envelope itself (exact), not on content_hash.
    rows = con.execute(
        """
        WITH ids AS (
          SELECT record_id FROM _xin_v WHERE err_field IS NULL
          GROUP BY record_id HAVING count(*) > 1
          UNION
          SELECT DISTINCT r.record_id FROM records r
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
                   FROM records WHERE record_id IN (SELECT record_id FROM ids)
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
    with _registered(con, _xin_t=targets):
        ledger = dict(
            con.execute(
                "SELECT record_id, any_value(source) FROM records "
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
        target_source = ledger.get(target)
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
