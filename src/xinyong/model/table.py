"""Reading a training or evaluation table (CSV or Parquet) and checking it.

Every problem is a ``ModelInputError`` whose message names the file and, where
there is one, the column and the row (1-based data row; in a CSV that is line
row + 1, after the header), so that a person can find and fix it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    """Candidate features and a 0/1 target (1 = bad) read from one file.

    Numeric features are float64 (NaN = missing); categorical ones (named in
    ``categorical``) hold text or numbers as read, with None/NaN = missing.
    ``dropped`` names every other column and says why it is not a feature.
    """

    path: Path
    features: pd.DataFrame
    target: np.ndarray  # int8, 1 = bad
    target_column: str
    bad_value: str
    categorical: tuple[str, ...] = ()
    dropped: dict[str, str] = field(default_factory=dict)
    frame: pd.DataFrame | None = None  # the whole file as read (groups for disparity)

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
    # 1, 1.0 and True are one value; anything else distinct is another class.
    numeric = pd.to_numeric(text.str.lower().replace({"true": "1", "false": "0"}), errors="coerce")
    classes = sorted(set(numeric.dropna().astype(float)) | set(text[numeric.isna()]), key=str)
    if len(classes) > 2:
        shown = ", ".join(repr(c) for c in classes[:6]) + (", ..." if len(classes) > 6 else "")
        raise ModelInputError(
            f"{path}: target column {column!r} is not binary: {len(classes)} distinct values"
            f" ({shown}); give a column with one good and one bad value"
        )
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


MAX_CATEGORIES = 50  # more distinct values than this is an identifier or free text


def _category_values(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """A categorical column: numbers when the column is numeric (a code), else
    stripped text; an empty cell is missing ("none" or "NA" are categories: in
    credit data they usually are, e.g. "other debtors: none")."""
    series = frame[column]
    if _looks_numeric(series):
        return _as_number(frame, column, path)
    text = series.astype("string").str.strip()
    blank = (text == "").fillna(True).astype(bool)
    values = text.astype(object)
    values[blank.to_numpy()] = None
    return values


def _why_not_a_feature(
    series: pd.Series, column: str, *, categorical: bool, named: bool
) -> str | None:
    """Why an automatically considered column is left out, or None."""
    from xinyong.packs.lint import special_category

    special = special_category(column)
    if special is not None:
        return f"special-category data ({special}): never a feature; measure with --group"
    low = column.lower()
    if not named and (column in IDENTIFIER_COLUMNS or low == "id" or low.endswith("_id")):
        return "an identifier (by its name)"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "a date or time: derive a number from it (days since, age) to use it"
    values = series.dropna()
    if categorical:
        values = values.astype(str).str.strip()
        values = values[values != ""]
    distinct = int(values.nunique())
    if distinct <= 1:
        return "constant (a single value)" if distinct else "empty (no value in any row)"
    if categorical and not named and distinct == len(values) and len(values) >= 20:
        return "an identifier (every value is distinct)"
    if categorical and distinct > MAX_CATEGORIES:
        return f"too many categories ({distinct}; at most {MAX_CATEGORIES})"
    return None


def load_training_table(
    path: str | Path,
    *,
    target: str,
    bad: str,
    features: list[str] | None = None,
    exclude: list[str] | None = None,
    categorical: list[str] | None = None,
    protected: list[str] | None = None,
) -> TrainingTable:
    """Read ``path`` and split it into candidate features and a 0/1 target.

    Without ``features``, every column other than the target is a candidate:
    numeric columns as numbers, text columns (and the ``categorical`` ones) as
    categories. Excluded and protected columns, identifiers, dates, constants,
    special-category data and columns with too many categories are left out,
    each with its reason in ``dropped``.
    """
    p = Path(path)
    frame = read_table(p)
    if target not in frame.columns:
        names = ", ".join(map(str, frame.columns))
        raise ModelInputError(f"{p}: no target column {target!r}; the columns are: {names}")
    excluded, protect = set(exclude or []), set(protected or [])
    named_cat = set(categorical or [])
    unknown = sorted((set(features or []) | excluded | protect | named_cat) - set(frame.columns))
    if unknown:
        raise ModelInputError(
            f"{p}: no column {', '.join(map(repr, unknown))}; the columns are:"
            f" {', '.join(map(str, frame.columns))}"
        )
    if target in (features or []) or target in named_cat:
        raise ModelInputError(f"{p}: the target {target!r} cannot also be a feature")
    both = sorted(protect & (set(features or []) | named_cat))
    if both:
        raise ModelInputError(
            f"{p}: {', '.join(map(repr, both))} is protected (--protected) and cannot also be"
            " a feature"
        )
    dropped: dict[str, str] = {}
    for c in frame.columns:
        if c in protect:
            dropped[str(c)] = "protected attribute (--protected): measured, never a feature"
        elif c in excluded:
            dropped[str(c)] = "excluded (--exclude)"
    candidates = [
        str(c) for c in (features or frame.columns) if c != target and str(c) not in dropped
    ]
    columns: dict[str, pd.Series] = {}
    cats: list[str] = []
    for name in candidates:
        is_cat = name in named_cat or not _looks_numeric(frame[name])
        why = _why_not_a_feature(frame[name], name, categorical=is_cat, named=features is not None)
        if why is not None:
            dropped[name] = why
            continue
        if is_cat:
            columns[name] = _category_values(frame, name, p)
            cats.append(name)
        else:
            # a model's own features cannot be left out
            advice = " (the model needs this column)" if features is not None else ""
            columns[name] = _as_number(frame, name, p, advice)
    if not columns:
        reasons = "; ".join(f"{k}: {v}" for k, v in dropped.items())
        raise ModelInputError(
            f"{p}: no feature columns besides the target {target!r}"
            + (f" ({reasons})" if reasons else "")
        )
    y = _target(frame, target, bad, p)
    return TrainingTable(p, pd.DataFrame(columns), y, target, bad, tuple(cats), dropped, frame)
