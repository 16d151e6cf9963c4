"""Vectorized building blocks: Poisson event times, record envelopes, JSON attributes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

YEAR = 365.25
LOCAL_EPOCH = np.datetime64("1970-01-01T00:00:00", "s")

RECORD_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("subject_id", pa.string()),
        ("type", pa.string()),
        ("occurred_at", pa.string()),
        ("source", pa.string()),
        ("attributes", pa.string()),
    ]
)

Column: TypeAlias = Any  # a pyarrow array, a numpy array, or one str/int/float for all rows


def poisson_times(
    rng: np.random.Generator,
    lo: np.ndarray,
    hi: np.ndarray,
    rate_per_year: float,
    multiplier: np.ndarray | float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Events of a Poisson process per subject on [lo, hi) days: (row, day as float)."""
    span = np.clip(hi - lo, 0, None).astype(np.float64)
    counts = rng.poisson(rate_per_year * span / YEAR * multiplier)
    rows = np.repeat(np.arange(len(lo)), counts)
    days = lo[rows] + rng.random(len(rows)) * span[rows]
    return rows, days


def rank_within(rows: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal (sorted) row numbers."""
    if len(rows) == 0:
        return rows.copy()
    starts = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
    counts = np.diff(np.r_[starts, len(rows)])
    return np.arange(len(rows)) - np.repeat(starts, counts)


def office_hours(rng: np.random.Generator, days: np.ndarray) -> np.ndarray:
    """Whole days moved to a local time between 08:00 and 20:00."""
    return np.floor(days) + (8 + 12 * rng.random(len(days))) / 24


def _text(value: Column, n: int) -> pa.Array | pa.Scalar:
    if isinstance(value, str):
        return pa.scalar(value)
    if isinstance(value, int | float):
        return pa.scalar(str(value))
    arr = value if isinstance(value, pa.Array) else pa.array(value)
    if not pa.types.is_string(arr.type):
        arr = pc.cast(arr, pa.string())
    return arr


def join(parts: Sequence[Column], n: int) -> pa.Array:
    """Element-wise concatenation of strings, numbers and arrays into n strings."""
    texts = [_text(p, n) for p in parts]
    if all(isinstance(t, pa.Scalar) for t in texts):
        return pa.array(["".join(str(t.as_py()) for t in texts)] * n, pa.string())
    out = pc.binary_join_element_wise(*texts, "")
    return out if len(out) == n else pa.array([out[0].as_py()] * n, pa.string())


def json_attrs(n: int, **fields: tuple[Column, bool]) -> pa.Array:
    """A JSON object per row; each field is (values, quoted). Values never hold quotes."""
    parts: list[Column] = ["{"]
    for i, (name, (values, quoted)) in enumerate(fields.items()):
        parts.append(("," if i else "") + f'"{name}":' + ('"' if quoted else ""))
        parts.append(values)
        if quoted:
            parts.append('"')
    parts.append("}")
    return join(parts, n)


@dataclass
class Chunk:
    """The records of one chunk of subjects, gathered before sorting and writing."""

    index: int
    subject_ids: pa.Array
    tables: list[pa.Table] = field(default_factory=list)
    serial: int = 0

    def ids(self, prefix: str, n: int) -> pa.Array:
        """n unique identifiers (case, ticket, account numbers) for this chunk."""
        first = self.serial
        self.serial += n
        numbers = np.arange(first, first + n) + self.index * 10_000_000
        return join([prefix, numbers], n)

    def add(
        self,
        type_: str,
        rows: np.ndarray,
        days: np.ndarray,
        source: Column,
        attributes: pa.Array,
        *,
        date_only: bool = False,
    ) -> pa.Array:
        """Append records (local day numbers as floats); returns their record ids."""
        n = len(rows)
        record_ids = self.ids(f"{type_}/", n)
        if n == 0:
            return record_ids
        if date_only:
            when = np.datetime64("1970-01-01", "D") + np.floor(days).astype("timedelta64[D]")
            occurred = pa.array(np.datetime_as_string(when, unit="D"))
        else:
            secs = LOCAL_EPOCH + np.floor(days * 86400).astype("timedelta64[s]")
            occurred = join([pa.array(np.datetime_as_string(secs, unit="s")), "+08:00"], n)
        self.tables.append(
            pa.table(
                {
                    "record_id": record_ids,
                    "subject_id": self.subject_ids.take(pa.array(rows)),
                    "type": pa.array([type_] * n, pa.string()),
                    "occurred_at": occurred,
                    "source": _text(source, n)
                    if not isinstance(source, str)
                    else pa.array([source] * n, pa.string()),
                    "attributes": attributes,
                    "_day": pa.array(days, pa.float64()),
                }
            )
        )
        return record_ids

    def table(self) -> pa.Table:
        """All records of the chunk in occurrence order (the order a source reports)."""
        if not self.tables:
            empty = RECORD_SCHEMA.append(pa.field("_day", pa.float64()))
            return empty.empty_table()
        combined = pa.concat_tables(self.tables)
        return combined.sort_by([("_day", "ascending"), ("record_id", "ascending")])
