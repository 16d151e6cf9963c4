"""Intake: every record is validated on the way into the ledger.

One code path for all inputs: `submit` (dicts), and `import_file` (JSON Lines,
CSV, Parquet) normalize into one Arrow table (`readers`), which is validated
set-wise inside DuckDB (catalog rules as joins and list predicates on a small
catalog table, identifiers checked once per distinct value with numpy), then the
accepted rows are appended in ONE transaction together with their `batches` row:
all or nothing, also when the process is killed.

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
`content_hash` = sha256 of the canonical envelope
`{"attributes":…,"occurred_at":"YYYY-MM-DDTHH:MM:SS.ffffff" (UTC),"record_id":…,
"source":…,"subject_id":…,"type":…}` (keys sorted, no spaces, UTF-8).

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
from functools import cache
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
    return _ingest(store, from_records(records), file=None, strict=strict,
                   recorded_at=recorded_at, progress=None)


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
        result = _ingest(store, normalized, file=str(path), strict=strict,
                         recorded_at=recorded_at, progress=prog)
    report = Path(rejects_path) if rejects_path is not None else \
        path.with_name(path.name + ".rejects.jsonl")
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
                TextColumn("[bold]{task.description}"), BarColumn(),
                TextColumn("{task.fields[stage]}"), TimeElapsedColumn(), transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(f"import {self.label}", total=len(_STAGES),
                                                 stage="")
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


#: attribute presence bits per BIGINT mask word (bit 63 stays clear)
_WORD = 62


@cache
def _attr_names() -> tuple[str, ...]:
    """Every catalog attribute name, sorted: the order of the typed columns, of the
    canonical attributes text and of the attribute checks."""
    names = tuple(load_catalog().attribute_columns)
    for n in names:
        _lit(n)
    return names


def _words() -> int:
    return max(1, -(-len(_attr_names()) // _WORD))


def _mask(names: Iterable[str]) -> list[int]:
    index = {n: i for i, n in enumerate(_attr_names())}
    words = [0] * _words()
    for n in names:
        i = index[n]
        words[i // _WORD] |= 1 << (i % _WORD)
    return words


@cache
def _catalog_table() -> pa.Table:
    """One row per record type: its number (`tid`), allowed source and subject kinds,
    attribute names (allowed, required) and the same as presence bit masks."""
    catalog = load_catalog()
    rows: dict[str, list[Any]] = {"tid": [], "type": [], "source_kinds": [], "subject_kinds": [],
                                  "allowed": [], "required": []}
    for w in range(_words()):
        rows[f"amask{w}"] = []
        rows[f"rmask{w}"] = []
    for tid, (name, rtype) in enumerate(catalog.types.items()):
        required = sorted(a for a, s in rtype.attributes.items() if s.required)
        rows["tid"].append(tid)
        rows["type"].append(name)
        rows["source_kinds"].append(list(rtype.sources))
        rows["subject_kinds"].append(list(rtype.subject_kinds))
        rows["allowed"].append(sorted(rtype.attributes))
        rows["required"].append(required)
        for w, (am, rm) in enumerate(zip(_mask(rtype.attributes), _mask(required), strict=True)):
            rows[f"amask{w}"].append(am)
            rows[f"rmask{w}"].append(rm)
    types = {"tid": pa.int32(), "amask": pa.int64(), "rmask": pa.int64()}
    return pa.table({k: pa.array(v, types.get(k.rstrip("0123456789"))) for k, v in rows.items()})


def _tids() -> dict[str, int]:
    return {name: i for i, name in enumerate(load_catalog().types)}


def _attr_specs() -> dict[str, dict[str, AttributeSpec]]:
    """attribute name -> {type name -> spec}."""
    out: dict[str, dict[str, AttributeSpec]] = {}
    for tname, rtype in load_catalog().types.items():
        for aname, spec in rtype.attributes.items():
            out.setdefault(aname, {})[tname] = spec
    return dict(sorted(out.items()))


def _group_by_spec(per_type: dict[str, AttributeSpec]) -> list[tuple[AttributeSpec, list[str]]]:
    groups: list[tuple[AttributeSpec, list[str]]] = []
    for tname, spec in per_type.items():
        for s, names in groups:
            if s == spec:
                names.append(tname)
                break
        else:
            groups.append((spec, [tname]))
    return groups


def _in_types(tnames: Iterable[str]) -> str:
    """Whether the row's type is one of tnames (a long IN list would become a join)."""
    tids = sorted(_tids()[t] for t in tnames)
    if len(tids) == 1:
        return f"tid = {tids[0]}"
    return "list_contains([" + ", ".join(map(str, tids)) + "], tid)"


def _dispatch(groups: list[tuple[AttributeSpec, list[str]]],
              sql: Callable[[AttributeSpec], str]) -> str:
    """sql(spec) for the spec of the row's type; only for rows whose type has the
    attribute, so the last group needs no test."""
    if len(groups) == 1:
        return sql(groups[0][0])
    return "CASE " + " ".join(f"WHEN {_in_types(t)} THEN {sql(s)}" for s, t in groups[:-1]) \
        + f" ELSE {sql(groups[-1][0])} END"




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
    if spec.type in ("string", "enum", "person_id"):
        err = f"CASE WHEN NOT starts_with(CAST({raw} AS VARCHAR), '\"') THEN 'must be text'"
        if spec.type == "enum":
            values = ", ".join(_lit(x) for x in spec.values or ())
            err += (f" WHEN NOT list_contains([{values}], {v}) THEN "
                    f"'must be one of ' || {_lit_any(', '.join(spec.values or ()))}")
        elif spec.type == "string":
            err += f" WHEN {v} = '' THEN 'must not be empty'"
        return err + " END"
    first = f"left(CAST({raw} AS VARCHAR), 1)"
    numeric = f"({first} BETWEEN '0' AND '9' OR {first} = '-')"
    if spec.type == "integer":
        err = (f"CASE WHEN NOT {numeric} OR {v} IS NULL OR {v} <> floor({v})"
               f" OR abs({v}) > 9.0e15 THEN 'must be an integer'")
    else:
        err = f"CASE WHEN NOT {numeric} OR {v} IS NULL THEN 'must be a number'"
    if spec.min is not None:
        err += f" WHEN {v} < {_num(spec.min)} THEN 'must be ≥ {_fmt(spec.min)}'"
    if spec.exclusive_min is not None:
        err += (f" WHEN {v} <= {_num(spec.exclusive_min)} "
                f"THEN 'must be > {_fmt(spec.exclusive_min)}'")
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


_OCC_FAST = (r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}([T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
             r"(\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?)?")

#: occurred_at text (`occ`) -> naive UTC instant, for the forms _OCC_FAST matches
#: (a date or a date-time without offset: Asia/Shanghai; Z; +hh:mm / -hh:mm);
#: other texts come parsed by Python (_xin_occ, exact rules of timeutil).
_OCC_SQL = f"""CASE
  WHEN regexp_full_match(OCC_TEXT, '{_OCC_FAST}') THEN CASE
    WHEN length(OCC_TEXT) = 10
      THEN CAST(TRY_CAST(OCC_TEXT AS DATE) AS TIMESTAMP) - INTERVAL 8 HOUR
    WHEN suffix(OCC_TEXT, 'Z') THEN TRY_CAST(substr(OCC_TEXT, 1, length(OCC_TEXT) - 1) AS TIMESTAMP)
    WHEN substr(OCC_TEXT, -6, 1) IN ('+', '-')
      THEN TRY_CAST(substr(OCC_TEXT, 1, length(OCC_TEXT) - 6) AS TIMESTAMP)
           - to_minutes(CAST((CASE WHEN substr(OCC_TEXT, -6, 1) = '-' THEN -1 ELSE 1 END)
                             * (CAST(substr(OCC_TEXT, -5, 2) AS INTEGER) * 60
                                + CAST(substr(OCC_TEXT, -2, 2) AS INTEGER)) AS BIGINT))
    ELSE TRY_CAST(OCC_TEXT AS TIMESTAMP) - INTERVAL 8 HOUR END
  ELSE o.instant
END"""


@cache
def _validation_sql() -> str:
    """The one set-wise validation query over _xin_in (see the module docstring).

    Each row's attributes are parsed once into a struct of every catalog attribute
    as JSON text (plus the key list, to see unknown and null-valued keys); a row
    whose present attributes are exactly allowed ones, all non-null, with the
    required ones among them (bit masks per type) takes the fast path; the others
    get the exact key checks. Then every present attribute is checked against the
    spec of the row's type, in attribute-name order."""
    catalog = load_catalog()
    names = _attr_names()
    specs = _attr_specs()
    struct = "{" + ", ".join(f'"{n}": "JSON"' for n in names) + "}"
    words = _words()
    mask_cols = []
    for w in range(words):
        bits = [f"CASE WHEN j.{n} IS NOT NULL THEN {1 << (i % _WORD)} ELSE 0 END"
                for i, n in enumerate(names) if i // _WORD == w]
        mask_cols.append(f"CAST({' + '.join(bits) or '0'} AS BIGINT) AS m{w}")
    popcount = " + ".join(f"bit_count(m{w})" for w in range(words))
    is_object = "starts_with(ltrim(attributes, ' ' || chr(9) || chr(10) || chr(13)), '{')"
    fast = " AND ".join(
        [f"len(keys) = {popcount}", f"(len(keys) > 0 OR {is_object})"]
        + [f"m{w} & ~amask{w} = 0 AND m{w} & rmask{w} = rmask{w}" for w in range(words)])

    value_cols: list[str] = []
    err_cols: list[str] = []
    out_cols: list[str] = []
    for n in names:
        raw = f"j.{n}"
        groups = _group_by_spec(specs[n])
        present = _dispatch(groups, lambda spec, raw=raw: _value_sql(spec, raw))  # type: ignore[misc]
        defaults = [(s, t) for s, t in groups if s.default is not None]
        value = f"CASE WHEN {raw} IS NOT NULL THEN {present} " + "".join(
            f"WHEN {_in_types(t)} THEN {_default_sql(s)} " for s, t in defaults) + "END"
        value_cols.append(f"{value} AS v_{n}")
        checks = _dispatch(groups, lambda spec, raw=raw, n=n: _check_sql(spec, raw, f"v_{n}"))  # type: ignore[misc]
        nulls = _dispatch(groups, _type_message)
        err_cols.append(
            f"CASE WHEN {raw} IS NOT NULL THEN {checks} "
            f"WHEN NOT fast AND list_contains(keys, {_lit(n)}) THEN {nulls} END AS e_{n}")
        col = attribute_column(n)
        kind = catalog.attribute_columns[n]
        out = f"v_{n}" if kind != "int64" else f"TRY_CAST(v_{n} AS BIGINT)"
        out_cols.append(f"CASE WHEN err IS NULL THEN {out} END AS {col}")
    attr_err = "CASE " + " ".join(
        f"WHEN a.e_{n} IS NOT NULL THEN ['attributes.{n}', a.e_{n}]" for n in names) + " END"
    person = [n for n in names if any(s.type == "person_id" for s in specs[n].values())]
    person_joins = " ".join(
        f"LEFT JOIN _xin_ids p_{n} ON p_{n}.sid = a.v_{n}" for n in person)
    person_checks = " ".join(
        f"WHEN a.v_{n} IS NOT NULL AND p_{n}.kind IS DISTINCT FROM 1 THEN "
        f"['attributes.{n}', 'must be a valid resident identity number: ' || "
        f"coalesce(p_{n}.reason, 'a unified social credit code')]" for n in person)
    cross = ""
    if "court.listing_decision" in catalog.types and {"ground", "extension_years"} <= set(names):
        # CATALOG.md: extension only for grounds other than able_but_refuses.
        cross = (f"WHEN a.tid = {_tids()['court.listing_decision']} "
                 "AND a.v_ground = 'able_but_refuses' AND a.v_extension_years > 0 "
                 "THEN ['attributes.extension_years', "
                 "'an extension applies only to grounds other than able_but_refuses']")
    canon = ("'{' || concat_ws(',', " + ", ".join(
        f"'\"{n}\":' || to_json({attribute_column(n)})" for n in names) + ") || '}'")
    return f"""
WITH base AS (
  SELECT i._row, i.record_id, i.type, i.source, i.occurred_at AS occ_text,
         i.subject_id AS sid_raw, i.attributes,
         t.tid, t.source_kinds, t.subject_kinds, t.allowed, t.required,
         {", ".join(f"t.amask{w}, t.rmask{w}" for w in range(words))},
         s.kind AS source_kind,
         d.sid, d.kind AS sid_kind, d.birth AS birth_date, d.flag AS sid_flag,
         d.reason AS sid_reason,
         {_OCC_SQL.replace("OCC_TEXT", "i.occurred_at")} AS occurred_at,
         o.reason AS occ_reason,
         CASE WHEN t.tid IS NOT NULL THEN try(json_transform(i.attributes, '{struct}')) END AS j,
         CASE WHEN t.tid IS NOT NULL THEN try(json_keys(i.attributes)) END AS keys
  FROM _xin_in i
  LEFT JOIN _xin_types t ON t.type = i.type
  LEFT JOIN sources s ON s.source_id = i.source
  LEFT JOIN _xin_sids d ON d.raw = i.subject_id
  LEFT JOIN _xin_occ o ON o.text = i.occurred_at
), masked AS (
  SELECT *, {", ".join(mask_cols)} FROM base
), pathed AS (
  SELECT *, coalesce({fast}, false) AS fast FROM masked
), valued AS (
  SELECT *, {", ".join(value_cols)} FROM pathed
), checked AS (
  SELECT *, {", ".join(err_cols)} FROM valued
), judged AS (
  SELECT a.*,
    CASE
      WHEN a.record_id IS NULL THEN ['record_id', 'missing']
      WHEN length(a.record_id) < 1 OR length(a.record_id) > 128
        THEN ['record_id', 'must be 1-128 characters']
      WHEN a.sid_raw IS NULL THEN ['subject_id', 'missing']
      WHEN a.sid_kind IS DISTINCT FROM 1 AND a.sid_kind IS DISTINCT FROM 2
        THEN ['subject_id', coalesce(a.sid_reason, 'invalid identifier')]
      WHEN a.type IS NULL THEN ['type', 'missing']
      WHEN a.tid IS NULL THEN ['type', 'unknown record type ' || a.type]
      WHEN a.occ_text IS NULL THEN ['occurred_at', 'missing']
      WHEN a.occurred_at IS NULL
        THEN ['occurred_at', coalesce(a.occ_reason, 'not an ISO 8601 date or date-time')]
      WHEN a.source IS NULL THEN ['source', 'missing']
      WHEN a.source_kind IS NULL THEN ['source', 'source ' || a.source || ' is not registered']
      WHEN NOT list_contains(a.source_kinds, a.source_kind)
        THEN ['source', 'a ' || a.source_kind || ' source may not report ' || a.type]
      WHEN NOT list_contains(a.subject_kinds, CASE a.sid_kind WHEN 1 THEN 'person'
                                                  ELSE 'organization' END)
        THEN ['subject_id', a.type || ' applies to ' || array_to_string(a.subject_kinds, ', ')
                            || ' subjects only']
      WHEN a.fast THEN NULL
      WHEN a.attributes IS NULL THEN ['attributes', 'missing']
      WHEN a.j IS NULL OR a.keys IS NULL THEN ['attributes', 'not valid JSON']
      WHEN NOT {is_object.replace("attributes", "a.attributes")}
        THEN ['attributes', 'must be an object']
      WHEN NOT list_has_all(a.allowed, a.keys)
        THEN ['attributes.' || list_filter(a.keys, k -> NOT list_contains(a.allowed, k))[1],
              'unknown attribute for ' || a.type]
      WHEN NOT list_has_all(a.keys, a.required)
        THEN ['attributes.' || list_filter(a.required, k -> NOT list_contains(a.keys, k))[1],
              'missing required attribute']
    END AS err1,
    {attr_err} AS aerr
  FROM checked a
), final AS (
  SELECT a.*,
    CASE
      WHEN a.err1 IS NOT NULL THEN a.err1
      WHEN a.aerr IS NOT NULL THEN a.aerr
      {person_checks}
      {cross}
      WHEN a.occurred_at > $recorded_at
        THEN ['occurred_at', 'date in the future (after recorded_at '
              || strftime($recorded_at, '%Y-%m-%dT%H:%M:%SZ') || ')']
    END AS err
  FROM judged a {person_joins}
), typed AS (
  SELECT _row, record_id, sid AS subject_id,
         CASE sid_kind WHEN 1 THEN 'person' WHEN 2 THEN 'organization' END AS subject_kind,
         birth_date, type, occurred_at, source, source_kind,
         CASE WHEN sid_flag THEN '{ADDRESS_CODE_UNKNOWN}' END AS subject_flags,
         {", ".join(out_cols)}, err
  FROM final
), canonical AS (
  SELECT *, CASE WHEN err IS NULL THEN {canon} END AS attributes FROM typed
)
SELECT * EXCLUDE (err), err[1] AS err_field, err[2] AS err_reason,
  CASE WHEN err IS NULL THEN sha256(
    '{{"attributes":' || attributes
    || ',"occurred_at":"' || strftime(occurred_at, '%Y-%m-%dT%H:%M:%S.%f')
    || '","record_id":' || to_json(record_id)
    || ',"source":' || to_json(source)
    || ',"subject_id":' || to_json(subject_id)
    || ',"type":' || to_json(type) || '}}') END AS content_hash
FROM canonical
"""


# --------------------------------------------------------------------------------------
# identifiers and instants (distinct values, Python only for the few the fast path fails)


def _ids_tables(con: Any) -> tuple[pa.Table, pa.Table]:
    """(_xin_ids: every distinct normalized identifier of the batch, subject ids and
    person_id attributes, with kind/birth/flag/reason; _xin_sids: the same keyed by the
    subject_id text as given, so that rows join on it without normalizing each row)."""
    specs = _attr_specs()
    person_attrs = [n for n, per in specs.items()
                    if any(s.type == "person_id" for s in per.values())]
    raw = con.execute(
        "SELECT raw, upper(trim(raw)) AS sid FROM "
        "(SELECT DISTINCT subject_id AS raw FROM _xin_in WHERE subject_id IS NOT NULL)"
    ).to_arrow_table()
    parts = []
    for n in person_attrs:
        types = ", ".join(_lit(t) for t in specs[n])
        parts.append(
            f"SELECT upper(trim(try(json_extract_string(attributes, '$.\"{n}\"')))) AS sid "
            f"FROM _xin_in WHERE type IN ({types}) AND attributes IS NOT NULL "
            f"AND try(json_type(attributes, '$.\"{n}\"')) = 'VARCHAR'"
        )
    sids = raw.column("sid")
    if parts:
        extra = con.execute(" UNION ".join(parts)).to_arrow_table().column(0)
        sids = pa.chunked_array([*sids.chunks, *extra.chunks], pa.string())
    distinct = pc.unique(sids.combine_chunks()).drop_null()
    res = classify_ids(distinct)
    kind = res["kind"]
    birth = res["birth"]
    flag = res["flag"]
    reason = np.full(len(distinct), None, dtype=object)
    bad = np.nonzero(kind == 0)[0]
    if bad.size:
        values = distinct.take(pa.array(bad)).to_pylist()
        for i, value in zip(bad, values, strict=True):
            try:
                sid = parse_subject_id(value)
            except InvalidIdentifier as exc:
                reason[i] = str(exc)
                continue
            # a form the fast path does not decide (should not happen); trust the reference
            kind[i] = 1 if sid.kind == "person" else 2
            birth[i] = (np.datetime64(sid.birth_date, "D") if sid.birth_date
                        else np.datetime64("NaT"))
            flag[i] = ADDRESS_CODE_UNKNOWN in sid.flags
    ids = pa.table({
        "sid": distinct,
        "kind": pa.array(kind, pa.int8()),
        "birth": pa.array(birth, pa.date32()),
        "flag": pa.array(flag, pa.bool_()),
        "reason": pa.array(reason, pa.string()),
    })
    return ids, raw.join(ids, "sid", join_type="left outer")


def _occ_table(con: Any) -> pa.Table:
    """Instants for occurred_at texts the SQL fast path does not parse (exact Python rules)."""
    texts = con.execute(
        "SELECT DISTINCT occurred_at FROM _xin_in WHERE occurred_at IS NOT NULL "
        "AND NOT regexp_full_match(occurred_at, ?)", [_OCC_FAST],
    ).to_arrow_table().column(0).to_pylist()
    instants: list[datetime | None] = []
    reasons: list[str | None] = []
    for text in texts:
        try:
            instants.append(parse_instant(text))
            reasons.append(None)
        except (ValueError, OverflowError) as exc:
            instants.append(None)
            reasons.append(str(exc))
    return pa.table({"text": pa.array(texts, pa.string()),
                     "instant": pa.array(instants, pa.timestamp("us")),
                     "reason": pa.array(reasons, pa.string())})


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

    with _registered(con, _xin_in=table, _xin_types=_catalog_table()):
        stage("identifiers")
        ids, sids = _ids_tables(con)
        occ = _occ_table(con)
        with _registered(con, _xin_ids=ids, _xin_sids=sids, _xin_occ=occ):
            stage("validating")
            con.execute("DROP TABLE IF EXISTS _xin_v")
            con.execute("CREATE TEMP TABLE _xin_v AS " + _validation_sql(),
                        {"recorded_at": stamp})
    try:
        return _finish(store, rejects, table.num_rows, file=file, strict=strict, stamp=stamp,
                       stage=stage)
    finally:
        con.execute("DROP TABLE IF EXISTS _xin_v")


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
        result = ImportResult(accepted=accepted, duplicates=duplicates, rejected=len(rejects),
                              rejects=rejects, recorded_at=stamp)
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
            "CAST($stamp AS TIMESTAMP)" if c == "recorded_at" else "CAST($batch AS BIGINT)"
            if c == "batch_id" else f"v.{c}" for c in cols
        )
        where = "v.err_field IS NULL"
        ex = pa.table({"_row": pa.array(sorted(excluded), pa.int64())})
        if excluded:
            where += " AND v._row NOT IN (SELECT _row FROM _xin_ex)"
        with _registered(con, _xin_ex=ex):
            con.execute(
                f"INSERT INTO records ({', '.join(cols)}) SELECT {select} FROM _xin_v v "
                f"WHERE {where}", {"stamp": stamp, "batch": batch_id},
            )
        con.execute("INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)",
                    [batch_id, file, stamp, accepted, duplicates, len(rejects)])
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
    # record_ids seen twice in this input, or already in the ledger
    rows = con.execute(
        """
        WITH ids AS (
          SELECT record_id FROM _xin_v WHERE err_field IS NULL
          GROUP BY record_id HAVING count(*) > 1
          UNION
          SELECT DISTINCT r.record_id FROM records r
          WHERE r.record_id IN (SELECT record_id FROM _xin_v WHERE err_field IS NULL)
        )
        SELECT v._row, v.record_id, v.content_hash, l.content_hash AS ledger_hash
        FROM _xin_v v JOIN ids USING (record_id)
        LEFT JOIN (SELECT record_id, any_value(content_hash) AS content_hash FROM records
                   WHERE record_id IN (SELECT record_id FROM ids) GROUP BY record_id) l
          USING (record_id)
        WHERE v.err_field IS NULL ORDER BY v._row
        """
    ).fetchall()
    first: dict[str, tuple[int, str]] = {}
    for row, rid, h, ledger_hash in rows:
        if ledger_hash is not None:
            if h == ledger_hash:
                duplicates += 1
            else:
                rejects.append(Reject(rid, row, "record_id",
                                      "conflict: record_id already in the ledger with other "
                                      "content"))
            excluded.add(row)
            continue
        seen = first.get(rid)
        if seen is None:
            first[rid] = (row, h)
        elif seen[1] == h:
            duplicates += 1
            excluded.add(row)
        else:
            rejects.append(Reject(rid, row, "record_id",
                                  f"conflict: record_id already used with other content in "
                                  f"row {seen[0]}"))
            excluded.add(row)

    # record.revoked: the target exists (ledger, or accepted earlier in this input) and
    # belongs to the same source unless the revoking source is an adjudicator.
    col = attribute_column("target_record_id")
    if col not in {r[0] for r in con.execute("DESCRIBE _xin_v").fetchall()}:
        return excluded, duplicates
    revs = con.execute(
        f"SELECT _row, record_id, source, source_kind, {col} FROM _xin_v "
        "WHERE err_field IS NULL AND type = ? ORDER BY _row", [REVOKED],
    ).fetchall()
    if not revs:
        return excluded, duplicates
    targets = pa.table({"t": pa.array(sorted({r[4] for r in revs}), pa.string())})
    with _registered(con, _xin_t=targets):
        ledger = dict(con.execute(
            "SELECT record_id, any_value(source) FROM records "
            "WHERE record_id IN (SELECT t FROM _xin_t) GROUP BY record_id").fetchall())
        batch = con.execute(
            "SELECT _row, record_id, source FROM _xin_v WHERE err_field IS NULL "
            "AND record_id IN (SELECT t FROM _xin_t) ORDER BY _row").fetchall()
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
            reason = (f"target record {target} is from source {target_source}; only that source "
                      "or an adjudicator may revoke it")
        else:
            continue
        rejects.append(Reject(rid, row, "attributes.target_record_id", reason))
        rejected_revs.add(row)
        excluded.add(row)
    return excluded, duplicates
