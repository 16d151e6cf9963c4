"""The validation statement: ONE DuckDB statement that checks a whole batch of
records against the catalog, whatever their types (see `ledger.intake` for the
order of checks). Per-type rules are CASE branches on a type id (tid) or columns
of a small catalog table joined by it; each row's attributes are parsed once.

SQL text here is built only from fixed strings and catalog names (package data,
checked against a strict pattern); input values travel as Arrow tables or `?`
parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import cache, partial
from typing import Any

import pyarrow as pa

from xinyong.catalog import load_catalog
from xinyong.catalog.identifiers import ADDRESS_CODE_UNKNOWN
from xinyong.catalog.vocabulary import AttributeSpec, attribute_column

_NAME = re.compile(r"^[a-z_][a-z0-9_.]*$")


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


def attr_specs() -> dict[str, dict[str, AttributeSpec]]:
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


#: How `raw` carries an attribute's value: JSON (text, or a struct field of another
#: type turned into JSON), a typed VARCHAR field, or a typed number (as DOUBLE).
JSON, TEXT, NUMBER = "json", "text", "number"


def _value_sql(spec: AttributeSpec, raw: str, form: str = JSON) -> str:
    """The value of one attribute from `raw` (DOUBLE for numbers, NULL where `raw`
    is of the wrong kind: its check reports that)."""
    numeric = spec.type in ("integer", "number")
    if form == TEXT and numeric:
        return "CAST(NULL AS DOUBLE)"
    if form == TEXT:
        return f"upper(trim({raw}))" if spec.type == "person_id" else raw
    if form == NUMBER:
        return raw if numeric else "CAST(NULL AS VARCHAR)"
    if numeric:
        return f"TRY_CAST({raw} AS DOUBLE)"
    if spec.type == "person_id":
        return f"upper(trim({raw}->>'$'))"
    return f"{raw}->>'$'"


def _check_sql(spec: AttributeSpec, raw: str, v: str, form: str = JSON) -> str:
    """The first problem (text) with a present attribute, or NULL; raw is its JSON
    text (or typed value, `form`), v its value (_value_sql). A typed value gets the
    same answers as its JSON text would (a number is not text, a text not a number;
    NaN and infinities are not numbers), without the text round trip."""
    if spec.type in ("string", "enum", "person_id", "date"):
        if form == NUMBER:
            return "'must be text'"
        if form == TEXT:
            err = "CASE WHEN false THEN NULL"
        else:
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
    if form == TEXT:
        return _type_message(spec)
    first = f"left(CAST({raw} AS VARCHAR), 1)"
    numeric = (
        f"isfinite({v})" if form == NUMBER else f"({first} BETWEEN '0' AND '9' OR {first} = '-')"
    )
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


OCC_FAST = (
    r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}([T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?)?"
)

#: occurred_at text (OCC_TEXT) -> naive UTC instant for the forms OCC_FAST matches
#: (a date or date-time without offset: Asia/Shanghai; Z; +hh:mm / -hh:mm); other
#: texts are parsed by Python (exact rules of timeutil). Run once per distinct text.
OCC_SQL = f"""CASE
  WHEN regexp_full_match(OCC_TEXT, '{OCC_FAST}') THEN CASE
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

_ENVELOPE_ERRORS = r"""
      WHEN record_id IS NULL THEN ['record_id', 'missing']
      WHEN length(record_id) < 1 OR length(record_id) > 128
        THEN ['record_id', 'must be 1-128 characters']
      WHEN regexp_full_match(record_id, '[\s\p{Z}]*') THEN ['record_id', 'must not be blank']
      WHEN regexp_matches(record_id, '[\p{Cc}\p{Cf}\p{Co}\p{Zl}\p{Zp}]')
        THEN ['record_id', 'must be printable text (no control or bidirectional characters)']
      WHEN sid_raw IS NULL THEN ['subject_id', 'missing']
      WHEN sid_kind IS DISTINCT FROM 1 AND sid_kind IS DISTINCT FROM 2
        THEN ['subject_id', coalesce(sid_reason, 'invalid identifier')]
      WHEN type IS NULL THEN ['type', 'missing']"""

_IS_OBJECT = "starts_with(ltrim(attributes, ' ' || chr(9) || chr(10) || chr(13)), '{')"


def list_sql(values: Iterable[str]) -> str:
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
def type_ids() -> dict[str, int]:
    """record type -> tid (its position in the catalog); -1: missing or unknown."""
    return {t: i for i, t in enumerate(load_catalog().types)}


@cache
def _attr_bits() -> dict[str, int]:
    """attribute name -> its bit in the attribute masks (names in sorted order)."""
    names = list(attr_specs())
    if len(names) > 62:
        raise ValueError("more than 62 attribute names: widen the attribute masks")
    return {n: i for i, n in enumerate(names)}


@cache
def types_table() -> pa.Table:
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
    for tname, tid in type_ids().items():
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
    ids = type_ids()
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


def _parse_sql(struct: str, fields: tuple[tuple[str, str], ...] | None) -> str:
    """The `parsed` step: each row's attributes as a struct `j` of ALL catalog
    attribute names and its key list. `fields` None: `attributes` is JSON text, parsed
    once (`j` of JSON values). Otherwise `attributes` is a typed STRUCT with these
    fields (catalog names, checked by the caller) and how each is read (`typed_forms`):
    text and numbers are taken as they are, no text round trip; other types as JSON.
    A null field is an absent key, as in `readers.struct_to_json`."""
    if fields is None:
        return (
            f"SELECT p.*, t.* EXCLUDE (tid), try(json_transform(attributes, '{struct}')) AS j, "
            "try(json_keys(attributes)) AS keys "
            "FROM _xin_part p LEFT JOIN _xin_types t USING (tid)"
        )
    forms = dict(fields)
    for n in forms:
        _lit(n)

    def member(n: str) -> str:
        field = f"struct_extract(p.attributes, {_lit(n)})"
        form = forms.get(n)
        if form == TEXT:
            return f"CAST({field} AS VARCHAR)"
        if form == NUMBER:
            return f"CAST({field} AS DOUBLE)"
        if form == JSON:
            return f"CAST(to_json({field}) AS JSON)"
        return "CAST(NULL AS JSON)"

    parts = ", ".join(f"{n} := {member(n)}" for n in attr_specs())
    keys = ", ".join(
        f"CASE WHEN struct_extract(p.attributes, {_lit(n)}) IS NOT NULL THEN {_lit(n)} END"
        for n in forms
    )
    return (
        "SELECT p.* EXCLUDE (attributes), "
        "CASE WHEN p.attributes IS NOT NULL THEN '{}' END AS attributes, t.* EXCLUDE (tid), "
        f"CASE WHEN p.attributes IS NOT NULL THEN struct_pack({parts}) END AS j, "
        f"CASE WHEN p.attributes IS NOT NULL THEN list_filter([{keys}], k -> k IS NOT NULL) "
        "END AS keys "
        "FROM _xin_part p LEFT JOIN _xin_types t USING (tid)"
    )


def typed_fields(attrs: pa.DataType) -> tuple[str, ...] | None:
    """The fields of a typed (STRUCT) attributes column that the validation statement
    reads directly: all distinct catalog attribute names; None when some field is
    not one (the column then travels as JSON text, see `readers.struct_to_json`)."""
    if not pa.types.is_struct(attrs):
        return None
    names = tuple(attrs.field(i).name for i in range(attrs.num_fields))
    specs = attr_specs()
    if len(set(names)) != len(names) or any(n not in specs for n in names):
        return None
    return names


def typed_forms(attrs: pa.DataType) -> tuple[tuple[str, str], ...] | None:
    """`typed_fields` with how the validation statement reads each: TEXT (a string
    field), NUMBER (an integer or floating-point field), JSON (any other type)."""
    names = typed_fields(attrs)
    if names is None:
        return None
    out = []
    for i, n in enumerate(names):
        t = attrs.field(i).type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            out.append((n, TEXT))
        elif pa.types.is_integer(t) or pa.types.is_float32(t) or pa.types.is_float64(t):
            out.append((n, NUMBER))
        else:
            out.append((n, JSON))
    return tuple(out)


@cache
def validation_sql(fields: tuple[tuple[str, str], ...] | None = None) -> str:
    """The set-wise validation of a whole batch in ONE statement (table _xin_part, the
    input with its envelope lookups; _xin_types, the catalog per record type; _xin_ids,
    the classified identifiers), see the module docstring. One plan for all record
    types: per-type rules are CASE branches on the type id (tid), or columns of
    _xin_types.

    The attributes are parsed once into a struct of ALL catalog attribute names as
    JSON text (from a typed struct, `fields`: its text and number fields as they are,
    see `typed_forms`), plus the key list. A row whose keys are exactly non-null names allowed
    for its type, with all required among them (bit masks), takes the fast path; the
    others get the exact key checks. Each present attribute is then checked against
    its type's spec, in name order."""
    specs = attr_specs()
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
    forms = dict(fields or ())
    values, checks, errors, typed, canon = [], [], [], [], []
    for n, per in specs.items():
        raw, v, col, form = f"j.{n}", f"v_{n}", attribute_column(n), forms.get(n, JSON)
        value = _by_type(_group(per, partial(_value_sql, raw=raw, form=form)), every=True)
        default = _by_type(_group(per, lambda s: None if s.default is None else _default_sql(s)))
        values.append(f"CASE WHEN {raw} IS NOT NULL THEN CASE {value} END {default} END AS {v}")
        check = _by_type(_group(per, partial(_check_sql, raw=raw, v=v, form=form)), every=True)
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
    ids = type_ids()
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
  {_parse_sql(struct, fields)}
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
      WHEN occurred_at < CAST(birth_date AS TIMESTAMP) - INTERVAL 8 HOUR
        THEN ['occurred_at', 'before the subject was born ('
              || strftime(birth_date, '%Y-%m-%d') || ', from the identity number)']
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
# DuckDB: a chunk validated into a staging table (a PostgreSQL store stages with COPY
# and runs its own statement; the rest of intake only reads the staged rows).

STAGE = "_xin_v"


def stage_chunk(con: Any, ids: pa.Table, part: pa.Table, stamp: Any) -> int:
    """Validate one prepared chunk (`envelope.prepare`) into the temporary table
    _xin_v, inside the caller's transaction: the rows stay in DuckDB (no round trip
    through Arrow) for the duplicate checks and the append. Returns its row count."""
    from xinyong.ledger.store import registered

    fields = typed_forms(part.schema.field("attributes").type)
    with registered(con, _xin_ids=ids, _xin_part=part, _xin_types=types_table()):
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {STAGE} AS {validation_sql(fields)}",
            {"recorded_at": stamp},
        )
    row = con.execute(f"SELECT count(*) FROM {STAGE}").fetchone()
    return int(row[0]) if row else 0


def drop_stage(con: Any) -> None:
    """Drop the staging table (nothing when there is none)."""
    con.execute(f"DROP TABLE IF EXISTS {STAGE}")
