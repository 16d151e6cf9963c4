"""Readers that normalize every input form (dicts, JSON Lines, JSON arrays, CSV,
Parquet) into Arrow tables, so that intake has a single, vectorized validation path.

Files are read in chunks of at most `chunk_rows` rows (`read_chunks`; Parquet by
record batches, CSV with Arrow's streaming reader, JSON Lines by lines), so that
memory stays bounded whatever the file's size; `_row` numbers run on across chunks.

The normalized table has the columns of `COLUMNS`: `_row` (1-based line number
for JSON Lines and CSV, position for Parquet and `submit`), the five envelope
fields as text and `attributes` as JSON text. Null means "missing". Values whose
*type* is wrong (a number where text belongs, attributes that are not an object)
cannot be carried as text and become early rejects instead.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from xinyong.ledger.validation import typed_fields

ENVELOPE = ("record_id", "subject_id", "type", "occurred_at", "source", "attributes")
COLUMNS = ("_row", *ENVELOPE)
SCHEMA = pa.schema([("_row", pa.int64())] + [(name, pa.string()) for name in ENVELOPE])


class FileFormatError(ValueError):
    """The input file cannot be read as records (names the file and line/column)."""


@dataclass(frozen=True, slots=True)
class Reject:
    record_id: str | None
    row: int
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "row": self.row,
            "field": self.field,
            "reason": self.reason,
        }


@dataclass
class Normalized:
    table: pa.Table
    rejects: list[Reject]


def detect_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    last = suffixes[-1] if suffixes else ""
    if last in (".jsonl", ".ndjson"):
        return "jsonl"
    if last == ".json":
        return "json"
    if last in (".csv",):
        return "csv"
    if last in (".parquet", ".pq"):
        return "parquet"
    raise FileFormatError(
        f"{path}: unknown file type {last or '(none)'!r}; use .jsonl, .json, .csv or .parquet"
    )


class _Builder:
    """Collects dict records into columns."""

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}
        self.rejects: list[Reject] = []

    def add(self, row: int, rec: Any) -> None:
        if not isinstance(rec, dict):
            self.rejects.append(Reject(None, row, "(record)", "a record must be a JSON object"))
            return
        rid = rec.get("record_id")
        rid_text = rid if isinstance(rid, str) else None
        unknown = [k for k in rec if k not in ENVELOPE]
        if unknown:
            self.rejects.append(
                Reject(rid_text, row, str(unknown[0]), f"unknown envelope field {unknown[0]!r}")
            )
            return
        values: dict[str, str | None] = {}
        for name in ENVELOPE:
            value = rec.get(name)
            if value is None:
                values[name] = None
            elif name == "attributes":
                if not isinstance(value, dict):
                    self.rejects.append(Reject(rid_text, row, name, "attributes must be an object"))
                    return
                try:
                    values[name] = json.dumps(value, ensure_ascii=False, allow_nan=False)
                except (TypeError, ValueError) as exc:
                    self.rejects.append(
                        Reject(rid_text, row, name, f"attributes are not JSON values: {exc}")
                    )
                    return
            elif isinstance(value, str):
                values[name] = value
            elif name == "occurred_at" and isinstance(value, _dt.date):
                values[name] = value.isoformat()
            else:
                self.rejects.append(
                    Reject(rid_text, row, name, f"{name} must be text, not {type(value).__name__}")
                )
                return
        self.cols["_row"].append(row)
        for name in ENVELOPE:
            self.cols[name].append(values[name])

    def result(self) -> Normalized:
        return Normalized(pa.table(self.cols, schema=SCHEMA), self.rejects)


def from_records(records: Iterable[Any]) -> Normalized:
    b = _Builder()
    for i, rec in enumerate(records, start=1):
        b.add(i, rec)
    return b.result()


def read_chunks(path: Path, fmt: str, con: Any, chunk_rows: int) -> Iterator[Normalized]:
    """The file's records, `chunk_rows` at a time (FileFormatError for a file that
    cannot be read as records, possibly after earlier chunks)."""
    if fmt == "jsonl":
        yield from read_jsonl(path, chunk_rows)
    elif fmt == "json":
        yield from read_json(path, chunk_rows)
    elif fmt == "csv":
        yield from read_csv(path, chunk_rows)
    else:
        yield from read_parquet(path, con, chunk_rows)


def _sliced(normalized: Normalized, chunk_rows: int) -> Iterator[Normalized]:
    table = normalized.table
    yield Normalized(table.slice(0, chunk_rows), normalized.rejects)
    for start in range(chunk_rows, table.num_rows, chunk_rows):
        yield Normalized(table.slice(start, chunk_rows), [])


def read_json(path: Path, chunk_rows: int = 1 << 20) -> Iterator[Normalized]:
    """A .json file: one array of records (rows numbered by position from 1), or
    JSON Lines under another name. An array is parsed whole (JSON has no way to read
    it in parts); use JSON Lines, CSV or Parquet for large files."""
    try:
        with path.open("r", encoding="utf-8-sig") as fh:
            head = fh.read(4096).lstrip()
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot open: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{path}: not UTF-8 text: {exc.reason}") from None
    if not head.startswith("["):
        yield from read_jsonl(path, chunk_rows)
        return
    try:
        records = json.loads(path.read_text("utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise FileFormatError(
            f"{path}, line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}"
        ) from None
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{path}: not UTF-8 text: {exc.reason}") from None
    if not isinstance(records, list):
        raise FileFormatError(f"{path}: a .json file holds one array of records")
    yield from _sliced(from_records(records), chunk_rows)


def read_jsonl(path: Path, chunk_rows: int = 1 << 20) -> Iterator[Normalized]:
    """JSON Lines: one record per line; a line that is not JSON is a reject of its own
    (the other lines are judged as usual)."""
    b = _Builder()
    try:
        # utf-8-sig: a byte-order mark at the start is not part of the first record
        fh = path.open("r", encoding="utf-8-sig")
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot open: {exc.strerror or exc}") from None
    with fh:
        lineno = 0
        try:
            for lineno, line in enumerate(fh, start=1):  # noqa: B007
                text = line.rstrip("\r\n")
                if not text.strip():
                    continue
                try:
                    rec = json.loads(text)
                except json.JSONDecodeError as exc:
                    # without the line end, a record cut short is placed at its end
                    b.rejects.append(
                        Reject(
                            None,
                            lineno,
                            "(record)",
                            f"column {exc.colno}: not valid JSON: {exc.msg}",
                        )
                    )
                    continue
                except RecursionError:
                    b.rejects.append(Reject(None, lineno, "(record)", "JSON nested too deeply"))
                    continue
                b.add(lineno, rec)
                if len(b.cols["_row"]) + len(b.rejects) >= chunk_rows:
                    yield b.result()
                    b = _Builder()
        except UnicodeDecodeError as exc:
            raise FileFormatError(
                f"{path}, line {lineno + 1}: not UTF-8 text: {exc.reason}"
            ) from None
    yield b.result()


def _check_columns(path: Path, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise FileFormatError(f"{path}: column {name!r} appears twice in the header")
        seen.add(name)
    missing = [c for c in ENVELOPE if c not in names]
    if missing:
        raise FileFormatError(
            f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(names) or 'none'})"
        )
    extra = [c for c in names if c not in ENVELOPE and not c.startswith("__")]
    if extra:
        raise FileFormatError(f"{path}: unknown column(s) {', '.join(extra)}")


def read_csv(path: Path, chunk_rows: int = 1 << 20) -> Iterator[Normalized]:
    import pyarrow.csv as pacsv

    try:
        with path.open("r", encoding="utf-8-sig", newline="") as fh:
            header = fh.readline()
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot open: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise FileFormatError(f"{path}, line 1: not UTF-8 text") from None
    import csv

    names = next(csv.reader([header]), [])
    _check_columns(path, names)
    bad: list[str] = []

    def on_invalid(row: Any) -> str:
        where = f"line {row.number}" if row.number is not None else "a row"
        bad.append(
            f"{path}, {where}: expected {row.expected_columns} columns, found {row.actual_columns}"
        )
        return "error"

    # CSV rows are numbered by line (the header is line 1).
    first = 2
    try:
        reader = pacsv.open_csv(
            path,
            parse_options=pacsv.ParseOptions(
                newlines_in_values=True, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        table = reader.schema.empty_table()
        for batch in _batches_or_empty(reader):
            table = pa.concat_tables([table, pa.Table.from_batches([batch])])
            while table.num_rows >= chunk_rows:
                yield _assemble(path, table.slice(0, chunk_rows), _positions(first, chunk_rows))
                first += chunk_rows
                table = table.slice(chunk_rows)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        if bad:
            raise FileFormatError(_first_ragged_line(path, len(names)) or bad[0]) from None
        raise FileFormatError(f"{path}: not a readable CSV file: {exc}") from None
    if table.num_rows or first == 2:
        yield _assemble(path, table, _positions(first, table.num_rows))


def _batches_or_empty(reader: Any) -> Iterator[pa.RecordBatch]:
    while True:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return


def _positions(first: int, n: int) -> pa.Array:
    return pa.array(np.arange(first, first + n, dtype=np.int64))


def _first_ragged_line(path: Path, expected: int) -> str | None:
    """Locate the first row with the wrong number of fields (error path only)."""
    import csv

    with path.open("r", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        for fields in reader:
            if len(fields) != expected:
                return (
                    f"{path}, line {reader.line_num}: expected {expected} columns, "
                    f"found {len(fields)}"
                )
    return None


def _occurred_text(path: Path, col: pa.ChunkedArray) -> pa.ChunkedArray:
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return col.cast(pa.string())
    if pa.types.is_date(t):
        return col.cast(pa.date32()).cast(pa.string())
    if pa.types.is_timestamp(t):
        if t.tz is not None:  # an instant: write it in UTC with a Z
            naive = col.cast(pa.timestamp(t.unit, tz="UTC")).cast(pa.timestamp(t.unit))
            return pc.binary_join_element_wise(
                pc.strftime(naive, format="%Y-%m-%dT%H:%M:%S"), pa.scalar("Z"), ""
            )
        # naive: local (Asia/Shanghai) time, like a date-time without an offset
        return pc.strftime(col, format="%Y-%m-%dT%H:%M:%S")
    raise FileFormatError(
        f"{path}: column occurred_at must be text, a date or a timestamp, found {t}"
    )


def read_parquet(path: Path, con: Any, chunk_rows: int = 1 << 20) -> Iterator[Normalized]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise FileFormatError(f"{path}: not a readable Parquet file: {exc}") from None
    names = parquet.schema_arrow.names
    _check_columns(path, names)
    first = 1
    try:
        batches = parquet.iter_batches(batch_size=chunk_rows, columns=list(ENVELOPE))
        for batch in batches:
            table = pa.Table.from_batches([batch])
            attrs = table.column("attributes")
            # typed attributes (a struct of catalog names) stay typed: the validation
            # statement reads them directly; any other struct travels as JSON text
            if pa.types.is_struct(attrs.type) and typed_fields(attrs.type) is None:
                table = table.set_column(
                    table.schema.get_field_index("attributes"),
                    "attributes",
                    struct_to_json(con, attrs),
                )
            yield _assemble(path, table, _positions(first, table.num_rows))
            first += table.num_rows
    except (OSError, pa.ArrowException) as exc:
        raise FileFormatError(f"{path}: not a readable Parquet file: {exc}") from None
    if first == 1:
        yield Normalized(SCHEMA.empty_table(), [])


def struct_to_json(con: Any, col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A struct column as JSON object text; null fields are absent keys."""
    fields = list(col.type)
    if not fields:
        return pa.chunked_array([pa.array(["{}"] * len(col), pa.string())])
    flat = col.combine_chunks()
    cols = {f"f{i}": flat.field(i) for i in range(len(fields))}
    cols["_valid"] = flat.is_valid()
    tmp = pa.table(cols)
    con.register("_xin_struct", tmp)
    try:
        # Column names are generated (f0, f1, ...); the key names travel as parameters.
        pieces = ", ".join(
            f"CASE WHEN f{i} IS NOT NULL THEN to_json(?::VARCHAR) || ':' || to_json(f{i}) END"
            for i in range(len(fields))
        )
        out = con.execute(
            f"SELECT CASE WHEN _valid THEN '{{' || concat_ws(',', {pieces}) || '}}' END "
            "AS attributes FROM _xin_struct",
            [f.name for f in fields],
        ).to_arrow_table()
    finally:
        con.unregister("_xin_struct")
    return out.column(0).cast(pa.string())


def _assemble(path: Path, table: pa.Table, rows: pa.Array) -> Normalized:
    """The normalized chunk: text envelope fields; attributes as JSON text, or as a
    typed struct (`validation.typed_fields`)."""
    cols: dict[str, Any] = {"_row": rows}
    schema = SCHEMA
    for name in ENVELOPE:
        col = table.column(name)
        if name == "occurred_at":
            col = _occurred_text(path, col)
        elif pa.types.is_large_string(col.type) or pa.types.is_string(col.type):
            col = col.cast(pa.string())
        elif name == "attributes" and typed_fields(col.type) is not None:
            schema = schema.set(schema.get_field_index(name), pa.field(name, col.type))
        else:
            raise FileFormatError(f"{path}: column {name} must be text, found {col.type}")
        cols[name] = col
    return Normalized(pa.table(cols, schema=schema), [])
