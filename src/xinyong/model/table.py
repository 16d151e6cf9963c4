"""Reading a training or evaluation table (CSV or Parquet) and checking it.

Every problem is a ``ModelInputError`` whose message names the file and, where
there is one, the column and the row (1-based data row; in a CSV that is line
row + 1, after the header), so that a person can find and fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

# Identifier columns are never features, even when every identifier happens to
# be all digits (an identity number without an X check character).
IDENTIFIER_COLUMNS = frozenset({"subject_id", "record_id"})


class ModelInputError(ValueError):
    """Input the model commands refuse (exit 1); the message says what and where."""


@dataclass(frozen=True)
class TrainingTable:
    """Numeric features and a 0/1 target (1 = bad) read from one file."""

    path: Path
    features: pd.DataFrame  # float64 columns, NaN = missing
    target: np.ndarray  # int8, 1 = bad
    target_column: str
    bad_value: str

    @property
    def rows(self) -> int:
        return len(self.target)


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV (.csv, .csv.gz) or Parquet (.parquet, .pq) file as a DataFrame."""
    p = Path(path)
    name = p.name.lower()
    if not p.exists():
        raise ModelInputError(f"{p}: no such file")
    if p.is_dir():
        raise ModelInputError(f"{p}: is a directory, not a CSV or Parquet file")
    try:
        if name.endswith((".parquet", ".pq")):
            frame = _read_parquet(p)
        elif name.endswith((".csv", ".csv.gz", ".txt")):
            frame = _read_csv(p)
        else:
            raise ModelInputError(f"{p}: unknown format; name it .csv or .parquet")
    except OSError as exc:
        raise ModelInputError(f"{p}: cannot read: {exc.strerror or exc}") from None
    if len(frame.columns) == 0:
        raise ModelInputError(f"{p}: empty file (no columns)")
    if len(frame) == 0:
        raise ModelInputError(f"{p}: no data rows (only a header)")
    return frame


def _read_csv(p: Path) -> pd.DataFrame:
    if p.stat().st_size == 0:
        raise ModelInputError(f"{p}: empty file")
    try:
        # Strings stay strings (no guessing of dates); numbers are parsed below
        # column by column, so that a bad cell can be named.
        return pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise ModelInputError(f"{p}: empty file") from None
    except pd.errors.ParserError as exc:
        raise ModelInputError(f"{p}: not a readable CSV file: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ModelInputError(
            f"{p}: not UTF-8 text (byte {exc.start}); is it really a CSV file?"
        ) from None


def _read_parquet(p: Path) -> pd.DataFrame:
    if p.stat().st_size == 0:
        raise ModelInputError(f"{p}: empty file")
    try:
        table = pq.read_table(p)
    except (pa.ArrowInvalid, pa.ArrowException) as exc:
        raise ModelInputError(f"{p}: not a readable Parquet file: {exc}") from None
    return table.to_pandas()


def _as_number(frame: pd.DataFrame, column: str, path: Path, advice: str = "") -> pd.Series:
    """The column as float64 (NaN = missing), or an error naming the first bad cell."""
    series = frame[column]
    if pd.api.types.is_bool_dtype(series):
        return series.astype("float64")
    if pd.api.types.is_numeric_dtype(series):
        out = series.astype("float64")
    else:
        text = series.astype("string").str.strip()
        # A blank or NA cell is a missing value, which the scorecard bins as missing.
        blank = text.str.upper().isin(["", "NA", "NAN", "NULL", "NONE"]).fillna(True)
        text = text.mask(blank.astype(bool))
        lowered = text.str.lower()
        is_true = (lowered == "true").fillna(False).astype(bool)
        is_false = (lowered == "false").fillna(False).astype(bool)
        text = text.mask(is_true, "1").mask(is_false, "0")
        out = pd.to_numeric(text, errors="coerce").astype("float64")
        bad = out.isna() & text.notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ModelInputError(
                f"{path}: column {column!r}, row {i + 1}: {str(series.iloc[i])!r} is not a"
                f" number ({int(bad.sum())} such cells); fix them"
                + (advice or f" or leave the column out with --exclude {column}")
            )
    inf = np.isinf(out.to_numpy())
    if inf.any():
        i = int(np.flatnonzero(inf)[0])
        raise ModelInputError(f"{path}: column {column!r}, row {i + 1}: infinite value")
    return out


def _looks_numeric(series: pd.Series) -> bool:
    """True for numeric columns, and for text columns that are mostly numbers (so a
    stray 'abc' in a numeric column is reported rather than silently dropping it)."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return True
    if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
        return False  # dates, categories, ...
    values = series.dropna().astype(str).str.strip()
    values = values[values != ""]
    if values.empty:
        return False
    parsed = pd.to_numeric(values, errors="coerce")
    return bool(parsed.notna().mean() >= 0.5)


def _target(frame: pd.DataFrame, column: str, bad: str, path: Path) -> np.ndarray:
    series = frame[column]
    missing = series.isna().to_numpy()
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise ModelInputError(
            f"{path}: target column {column!r}, row {i + 1}: empty ({int(missing.sum())} empty"
            " cells); every row needs a target value"
        )
    text = series.astype(str).str.strip()
    is_bad = (text == bad.strip()).to_numpy()
    try:
        wanted = float(bad)
    except ValueError:
        wanted = None
    if wanted is not None:
        # "1" must match 1, 1.0 and True alike.
        mapped = text.str.lower().replace({"true": "1", "false": "0"})
        numbers = pd.to_numeric(mapped, errors="coerce").to_numpy(dtype="float64")
        is_bad = is_bad | (numbers == wanted)
    n_bad = int(is_bad.sum())
    if n_bad == 0 or n_bad == len(is_bad):
        seen = sorted(set(text.head(1000)))[:5]
        which = "no row" if n_bad == 0 else "every row"
        raise ModelInputError(
            f"{path}: target column {column!r} has a single class: {which} has the bad value"
            f" {bad!r} (values seen: {', '.join(map(repr, seen))}); training needs both good"
            " and bad rows"
        )
    return is_bad.astype("int8")


def load_training_table(
    path: str | Path,
    *,
    target: str,
    bad: str,
    features: list[str] | None = None,
    exclude: list[str] | None = None,
) -> TrainingTable:
    """Read ``path`` and split it into numeric candidate features and a 0/1 target.

    Without ``features``, every numeric column other than the target, the excluded
    ones and identifier columns is a candidate.
    """
    p = Path(path)
    frame = read_table(p)
    if target not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise ModelInputError(f"{p}: no target column {target!r}; the columns are: {columns}")
    excluded = set(exclude or [])
    unknown = sorted((set(features or []) | excluded) - set(frame.columns))
    if unknown:
        raise ModelInputError(
            f"{p}: no column {', '.join(map(repr, unknown))}; the columns are:"
            f" {', '.join(map(str, frame.columns))}"
        )
    if features:
        if target in features:
            raise ModelInputError(f"{p}: the target {target!r} cannot also be a feature")
        names = [c for c in features if c not in excluded]
    else:
        names = [
            str(c)
            for c in frame.columns
            if c != target
            and c not in excluded
            and c not in IDENTIFIER_COLUMNS
            and _looks_numeric(frame[c])
        ]
    if not names:
        raise ModelInputError(f"{p}: no numeric feature columns besides the target {target!r}")
    # named features are the model's own: leaving one out is no way out
    advice = " (the model needs this column)" if features else ""
    numeric = {name: _as_number(frame, name, p, advice) for name in names}
    y = _target(frame, target, bad, p)
    return TrainingTable(p, pd.DataFrame(numeric), y, target, bad)
