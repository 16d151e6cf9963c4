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


@cache
def _catalog_table() -> pa.Table:
    catalog = load_catalog()
    rows: dict[str, list[Any]] = {"type": [], "source_kinds": [], "subject_kinds": [],
                                  "allowed": [], "required": []}
    for name, rtype in catalog.types.items():
        rows["type"].append(name)
        rows["source_kinds"].append(list(rtype.sources))
        rows["subject_kinds"].append(list(rtype.subject_kinds))
        rows["allowed"].append(sorted(rtype.attributes))
        rows["required"].append(sorted(a for a, s in rtype.attributes.items() if s.required))
    return pa.table(rows)


def _attr_specs() -> dict[str, dict[str, AttributeSpec]]:
    """attribute name -> {type name -> spec}."""
    out: dict[str, dict[str, AttributeSpec]] = {}
    for tname, rtype in load_catalog().types.items():
        for aname, spec in rtype.attributes.items():
            out.setdefault(aname, {})[tname] = spec
    return dict(sorted(out.items()))


def _spec_value_sql(name: str, spec: AttributeSpec, v: str) -> tuple[str, str]:
    """(typed value expr, error reason expr) for one attribute spec; v is the JSON value."""
    jt = f"json_type({v})"
    if spec.type in ("string", "enum", "person_id"):
        value = f"CASE WHEN {jt} = 'VARCHAR' THEN {v}->>'$' END"
        err = f"CASE WHEN {jt} <> 'VARCHAR' THEN 'must be text'"
        if spec.type == "enum":
            values = ", ".join(_lit(x) for x in spec.values or ())
            err += (f" WHEN NOT list_contains([{values}], {value}) THEN "
                    f"'must be one of ' || {_lit_any(', '.join(spec.values or ()))}")
        elif spec.type == "string":
            err += f" WHEN length({value}) = 0 THEN 'must not be empty'"
        err += " END"
        if spec.type == "person_id":
            value = f"upper(trim({value}))"
        return value, err
    numeric = "('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT')"
    if spec.type == "integer":
        value = f"CASE WHEN {jt} IN {numeric} THEN TRY_CAST({v} AS DOUBLE) END"
        err = (f"CASE WHEN {jt} NOT IN {numeric} OR {value} IS NULL OR {value} <> floor({value})"
               f" OR abs({value}) > 9.0e15 THEN 'must be an integer'")
    else:
        value = f"CASE WHEN {jt} IN {numeric} THEN TRY_CAST({v} AS DOUBLE) END"
        err = f"CASE WHEN {jt} NOT IN {numeric} OR {value} IS NULL THEN 'must be a number'"
    if spec.min is not None:
        err += f" WHEN {value} < {_num(spec.min)} THEN 'must be ≥ {_fmt(spec.min)}'"
    if spec.exclusive_min is not None:
        err += (f" WHEN {value} <= {_num(spec.exclusive_min)} "
                f"THEN 'must be > {_fmt(spec.exclusive_min)}'")
    if spec.max is not None:
        err += f" WHEN {value} > {_num(spec.max)} THEN 'must be ≤ {_fmt(spec.max)}'"
    err += " END"
    if spec.type == "integer":
        value = f"CAST({value} AS BIGINT)"
    return value, err


def _lit_any(text: str) -> str:
    if "'" in text or "\\" in text:
        raise ValueError(f"unexpected catalog text {text!r}")
    return "'" + text + "'"


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _default_sql(spec: AttributeSpec) -> str:
    d = spec.default
    if isinstance(d, bool) or d is None:
        raise ValueError("unsupported default")
    if isinstance(d, int | float):
        return f"CAST({_num(d)} AS {'BIGINT' if spec.type == 'integer' else 'DOUBLE'})"
    return _lit_any(str(d))


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


@cache
def _validation_sql(tname: str | None) -> str:
    """The set-wise validation query over the rows of _xin_in of one record type
    (None: rows whose type is missing or unknown), see the module docstring.
    One query per type keeps each row's expressions to its own attributes."""
    specs = {a: {tname: s} for a, s in sorted(load_catalog().types[tname].attributes.items())} \
        if tname is not None else {}
    names = list(specs)
    paths = ", ".join(f"'$.\"{n}\"'" for n in names)
    where = (f"i.type = {_lit(tname)}" if tname is not None
             else "i.type IS NULL OR i.type NOT IN (SELECT type FROM _xin_types)")
    value_cols: list[str] = []
    err_cols: list[str] = []
    for i, (aname, per_type) in enumerate(specs.items(), start=1):
        v = f"vals[{i}]"
        vbranches: list[str] = []
        ebranches: list[str] = []
        for spec, _tnames in _group_by_spec(per_type):
            cond = "true"  # one query per type: every row here has this type
            value, err = _spec_value_sql(aname, spec, v)
            if spec.default is not None:
                value = f"CASE WHEN {v} IS NULL THEN {_default_sql(spec)} ELSE {value} END"
                err = f"CASE WHEN {v} IS NOT NULL THEN {err} END"
            vbranches.append(f"WHEN {cond} THEN {value}")
            ebranches.append(f"WHEN {cond} AND {v} IS NOT NULL THEN {err}")
        col = attribute_column(aname)
        value_cols.append(f"CASE WHEN keys_ok THEN CASE {' '.join(vbranches)} END END AS {col}")
        err_cols.append(f"CASE WHEN keys_ok THEN CASE {' '.join(ebranches)} END END AS e_{aname}")
    attr_field = "CASE " + " ".join(
        f"WHEN e_{n} IS NOT NULL THEN 'attributes.{n}'" for n in names) + " END"
    attr_reason = "coalesce(" + ", ".join(f"e_{n}" for n in names) + ")" if names else "NULL"
    if not names:
        attr_field = "NULL"
    person_checks = [
        (n, attribute_column(n)) for n, per in specs.items()
        if any(s.type == "person_id" for s in per.values())
    ]
    person_joins = " ".join(
        f"LEFT JOIN _xin_ids p_{n} ON p_{n}.sid = a.{col}" for n, col in person_checks)
    typed_cols = "".join(f"a.{attribute_column(n)}, " for n in names)
    canon = ("'{' || concat_ws(',', " + ", ".join(
        f"'\"{n}\":' || to_json(a.{attribute_column(n)})" for n in names) + ") || '}'"
        if names else "'{}'")
    ext = attribute_column("extension_years") if "extension_years" in specs else None
    ground = attribute_column("ground") if "ground" in specs else None
    cross = ""
    if ext and ground and tname == "court.listing_decision":
        # CATALOG.md: extension only for grounds other than able_but_refuses.
        cross = (f"WHEN a.type = 'court.listing_decision' AND a.{ground} = 'able_but_refuses' "
                 f"AND a.{ext} > 0 THEN ['attributes.extension_years', "
                 "'an extension applies only to grounds other than able_but_refuses']")
    occ_re_date = r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}"
    occ_re_time = (r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}[T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
                   r"(\.[0-9]{1,6})?")
    occ_re_off = occ_re_time + r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
    return f"""
WITH base AS (
  SELECT i._row, i.record_id, i.type, i.source, i.occurred_at AS occ_text,
         i.subject_id AS sid_raw, upper(trim(i.subject_id)) AS sid, i.attributes,
         t.type IS NOT NULL AS type_ok, t.source_kinds, t.subject_kinds, t.allowed, t.required,
         s.kind AS source_kind,
         CASE
           WHEN regexp_full_match(i.occurred_at, '{occ_re_date}')
             THEN TRY_CAST(TRY_CAST(i.occurred_at AS DATE) AS TIMESTAMP) - INTERVAL 8 HOUR
           WHEN regexp_full_match(i.occurred_at, '{occ_re_time}')
             THEN TRY_CAST(replace(i.occurred_at, 'T', ' ') AS TIMESTAMP) - INTERVAL 8 HOUR
           WHEN regexp_full_match(i.occurred_at, '{occ_re_off}')
             THEN TRY_CAST(replace(
                    CASE WHEN i.occurred_at LIKE '%Z'
                         THEN substr(i.occurred_at, 1, length(i.occurred_at) - 1)
                         ELSE substr(i.occurred_at, 1, length(i.occurred_at) - 6) END,
                    'T', ' ') AS TIMESTAMP)
                  - CASE WHEN i.occurred_at LIKE '%Z' THEN INTERVAL 0 MINUTE ELSE
                      to_minutes(CAST(
                        (CASE WHEN substr(i.occurred_at, -6, 1) = '-' THEN -1 ELSE 1 END)
                        * (CAST(substr(i.occurred_at, -5, 2) AS INTEGER) * 60
                           + CAST(substr(i.occurred_at, -2, 2) AS INTEGER)) AS BIGINT)) END
           ELSE o.instant
         END AS occurred_at,
         o.reason AS occ_reason,
         try(json_type(i.attributes)) AS attr_type
  FROM _xin_in i
  LEFT JOIN _xin_types t ON t.type = i.type
  LEFT JOIN sources s ON s.source_id = i.source
  LEFT JOIN _xin_occ o ON o.text = i.occurred_at
  WHERE {where}
), parsed AS (
  SELECT b.*, d.kind AS sid_kind, d.birth AS birth_date, d.flag AS sid_flag,
         d.reason AS sid_reason,
         CASE WHEN attr_type = 'OBJECT' AND type_ok THEN json_keys(attributes) END AS keys,
         {f"CASE WHEN attr_type = 'OBJECT' AND type_ok THEN json_extract(attributes, [{paths}]) END"
          if names else "NULL"} AS vals
  FROM base b LEFT JOIN _xin_ids d ON d.sid = b.sid
), keyed AS (
  SELECT *, keys IS NOT NULL AND list_has_all(allowed, keys) AND list_has_all(keys, required)
            AS keys_ok
  FROM parsed
), typed AS (
  SELECT *{"".join(", " + c for c in value_cols + err_cols)}
  FROM keyed
), checked AS (
  SELECT a.*,
    CASE
      WHEN a.record_id IS NULL THEN ['record_id', 'missing']
      WHEN length(a.record_id) < 1 OR length(a.record_id) > 128
        THEN ['record_id', 'must be 1-128 characters']
      WHEN a.sid_raw IS NULL THEN ['subject_id', 'missing']
      WHEN a.sid_kind IS DISTINCT FROM 1 AND a.sid_kind IS DISTINCT FROM 2
        THEN ['subject_id', coalesce(a.sid_reason, 'invalid identifier')]
      WHEN a.type IS NULL THEN ['type', 'missing']
      WHEN NOT a.type_ok THEN ['type', 'unknown record type ' || a.type]
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
      WHEN a.attributes IS NULL THEN ['attributes', 'missing']
      WHEN a.attr_type IS NULL THEN ['attributes', 'not valid JSON']
      WHEN a.attr_type <> 'OBJECT' THEN ['attributes', 'must be an object']
      WHEN NOT list_has_all(a.allowed, a.keys)
        THEN ['attributes.' || list_filter(a.keys, k -> NOT list_contains(a.allowed, k))[1],
              'unknown attribute for ' || a.type]
      WHEN NOT list_has_all(a.keys, a.required)
        THEN ['attributes.' || list_filter(a.required, k -> NOT list_contains(a.keys, k))[1],
              'missing required attribute']
      WHEN {attr_reason} IS NOT NULL THEN [{attr_field}, {attr_reason}]
      {" ".join(
          f"WHEN a.{col} IS NOT NULL AND p_{n}.kind IS DISTINCT FROM 1 THEN "
          f"['attributes.{n}', 'must be a valid resident identity number: ' || "
          f"coalesce(p_{n}.reason, 'a unified social credit code')]"
          for n, col in person_checks)}
      {cross}
      WHEN a.occurred_at > $recorded_at
        THEN ['occurred_at', 'date in the future (after recorded_at '
              || strftime($recorded_at, '%Y-%m-%dT%H:%M:%SZ') || ')']
    END AS err
  FROM typed a {person_joins}
)
SELECT _row, record_id, sid AS subject_id,
       CASE sid_kind WHEN 1 THEN 'person' WHEN 2 THEN 'organization' END AS subject_kind,
       birth_date, type, occurred_at, source, source_kind,
       CASE WHEN err IS NULL THEN {canon} END AS attributes,
       CASE WHEN sid_flag THEN '{ADDRESS_CODE_UNKNOWN}' END AS subject_flags,
       {typed_cols}err[1] AS err_field, err[2] AS err_reason
FROM checked a
"""


_HASH_SQL = """
CREATE TEMP TABLE _xin_v AS
SELECT *, CASE WHEN err_field IS NULL THEN sha256(
  '{"attributes":' || attributes
  || ',"occurred_at":' || to_json(strftime(occurred_at, '%Y-%m-%dT%H:%M:%S.%f'))
  || ',"record_id":' || to_json(record_id)
  || ',"source":' || to_json(source)
  || ',"subject_id":' || to_json(subject_id)
  || ',"type":' || to_json(type) || '}') END AS content_hash
FROM (
"""


# --------------------------------------------------------------------------------------
# identifiers and instants (distinct values, Python only for the few the fast path fails)


def _ids_table(con: Any) -> pa.Table:
    specs = _attr_specs()
    person_attrs = [n for n, per in specs.items()
                    if any(s.type == "person_id" for s in per.values())]
    parts = ["SELECT upper(trim(subject_id)) AS sid FROM _xin_in WHERE subject_id IS NOT NULL"]
    for n in person_attrs:
        types = ", ".join(_lit(t) for t in specs[n])
        parts.append(
            f"SELECT upper(trim(try(json_extract_string(attributes, '$.\"{n}\"')))) FROM _xin_in "
            f"WHERE type IN ({types}) AND attributes IS NOT NULL "
            f"AND try(json_type(attributes, '$.\"{n}\"')) = 'VARCHAR'"
        )
    distinct = con.execute(
        "SELECT DISTINCT sid FROM (" + " UNION ALL ".join(parts) + ") WHERE sid IS NOT NULL"
    ).to_arrow_table().column(0).combine_chunks()
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
    return pa.table({
        "sid": distinct,
        "kind": pa.array(kind, pa.int8()),
        "birth": pa.array(birth, pa.date32()),
        "flag": pa.array(flag, pa.bool_()),
        "reason": pa.array(reason, pa.string()),
    })


def _occ_table(con: Any) -> pa.Table:
    """Instants for occurred_at texts the SQL fast path does not parse (exact Python rules)."""
    fast = (r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}([T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
            r"(\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?)?")
    texts = con.execute(
        "SELECT DISTINCT occurred_at FROM _xin_in WHERE occurred_at IS NOT NULL "
        "AND NOT regexp_full_match(occurred_at, ?)", [fast],
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
        ids = _ids_table(con)
        occ = _occ_table(con)
        with _registered(con, _xin_ids=ids, _xin_occ=occ):
            stage("validating")
            con.execute("DROP TABLE IF EXISTS _xin_v")
            present = [r[0] for r in con.execute(
                "SELECT DISTINCT type FROM _xin_in WHERE type IN (SELECT type FROM _xin_types)"
            ).fetchall()]
            query = " UNION ALL BY NAME ".join(
                f"({_validation_sql(t)})" for t in [*sorted(present), None])
            con.execute(_HASH_SQL + query + ")", {"recorded_at": stamp})
    try:
        return _finish(store, rejects, file=file, strict=strict, stamp=stamp, stage=stage)
    finally:
        con.execute("DROP TABLE IF EXISTS _xin_v")


def _finish(
    store: Store,
    rejects: list[Reject],
    *,
    file: str | None,
    strict: bool,
    stamp: datetime,
    stage: Callable[[str], None],
) -> ImportResult:
    con = store.sql
    for row, rid, fld, reason in con.execute(
        "SELECT _row, record_id, err_field, err_reason FROM _xin_v WHERE err_field IS NOT NULL"
    ).fetchall():
        rejects.append(Reject(rid, int(row), fld, reason))

    stage("duplicates")
    con.execute("BEGIN TRANSACTION")
    try:
        excluded, duplicates = _duplicates_and_revocations(con, rejects)
        rejects.sort(key=lambda r: r.row)
        total_rows = con.execute("SELECT count(*) FROM _xin_v WHERE err_field IS NULL").fetchone()
        accepted = int(total_rows[0] if total_rows else 0) - len(excluded)
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
        have = {r[0] for r in con.execute("DESCRIBE _xin_v").fetchall()}
        cols = [c for c in record_columns() if c in have or c in ("recorded_at", "batch_id")]
        select = ", ".join(
            "CAST(? AS TIMESTAMP)" if c == "recorded_at" else "CAST(? AS BIGINT)"
            if c == "batch_id" else f"v.{c}" for c in cols
        )
        ex = pa.table({"_row": pa.array(sorted(excluded), pa.int64())})
        with _registered(con, _xin_ex=ex):
            con.execute(
                f"INSERT INTO records ({', '.join(cols)}) SELECT {select} FROM _xin_v v "
                "WHERE v.err_field IS NULL AND v._row NOT IN (SELECT _row FROM _xin_ex)",
                [stamp, batch_id],
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
