"""Writing a synthetic city: chunked generation, one Parquet file per year."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from xinyong.sim.behaviour import (
    ADJUDICATOR,
    CITY,
    COMMERCIAL_PORTAL,
    COURT_SOURCE,
    CREDIT_REFERENCE,
    INTERMEDIATE,
    LENDERS,
    MARKET_REGULATOR,
    UTILITY,
    Subjects,
    courts,
    loans,
    municipal,
    year_of,
)
from xinyong.sim.events import RECORD_SCHEMA, Chunk
from xinyong.sim.population import (
    RESIDENCE_CODES,
    Organizations,
    Persons,
    make_organizations,
    make_persons,
)
from xinyong.sim.rates import day_of
from xinyong.sim.registry import organization_registry, person_registry
from xinyong.timeutil import parse_instant

CHUNK_SUBJECTS = 50_000
Progress = Callable[[int, int], None]  # (subjects done, subjects in all)


def sources() -> list[tuple[str, str]]:
    """Every source the simulated city's records come from: (source_id, kind)."""
    ids = [
        *CITY,
        *COURT_SOURCE,
        INTERMEDIATE[0],
        *LENDERS,
        COMMERCIAL_PORTAL,
        *UTILITY.values(),
        MARKET_REGULATOR,
        CREDIT_REFERENCE,
        ADJUDICATOR,
    ]
    return [(str(s), str(s).split(":")[0]) for s in ids]


@dataclass
class YearFile:
    year: int
    path: Path
    recorded_at: datetime  # naive UTC: when the registry learns this year's records
    records: int


@dataclass
class CityFiles:
    out_dir: Path
    years: list[YearFile]
    sources_path: Path
    subjects_path: Path
    labels_path: Path
    persons: int
    organizations: int
    start: date
    end: date
    label_at: date
    seed: int
    sources: list[tuple[str, str]] = field(default_factory=sources)

    @property
    def records(self) -> int:
        return sum(y.records for y in self.years)

    @property
    def record_paths(self) -> list[Path]:
        return [y.path for y in self.years]


class _YearWriters:
    def __init__(self, out_dir: Path, start: date, end: date) -> None:
        self.out_dir, self.start, self.end = out_dir, start, end
        self.writers: dict[int, pq.ParquetWriter] = {}
        self.counts: dict[int, int] = {}

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        days = table.column("_day").to_numpy()
        years = np.clip(year_of(days), self.start.year, self.end.year)
        table = table.drop_columns(["_day"])
        for year in np.unique(years):
            part = table.filter(pa.array(years == year))
            y = int(year)
            if y not in self.writers:
                path = self.out_dir / f"records-{y}.parquet"
                self.writers[y] = pq.ParquetWriter(path, RECORD_SCHEMA, compression="zstd")
                self.counts[y] = 0
            self.writers[y].write_table(part)
            self.counts[y] += part.num_rows

    def close(self) -> list[YearFile]:
        files = []
        for y in sorted(self.writers):
            self.writers[y].close()
            batch_end = min(date(y + 1, 1, 1), self.end)
            files.append(
                YearFile(
                    y,
                    self.out_dir / f"records-{y}.parquet",
                    parse_instant(batch_end),
                    self.counts[y],
                )
            )
        return files


def generate_city(
    out_dir: str | Path,
    persons: int = 100_000,
    organizations: int = 5_000,
    *,
    start: date = date(2015, 1, 1),
    end: date = date(2026, 11, 1),
    seed: int = 20140614,
    label_at: date | None = None,
    chunk_subjects: int = CHUNK_SUBJECTS,
    progress: Progress | None = None,
) -> CityFiles:
    """Generate a city into ``out_dir``: ``records-YYYY.parquet`` (records that
    occurred in that year; earlier facts such as birth names go into the first
    year), ``sources.json``, ``subjects.parquet`` and ``labels.parquet``.

    Deterministic: the same arguments give the same files, byte for byte.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start_day, end_day = day_of(start.isoformat()), day_of(end.isoformat())
    if end_day <= start_day:
        raise ValueError("end must be after start")
    label_day = day_of((label_at or date.fromordinal(end.toordinal() - 365)).isoformat())
    # One stream per purpose and chunk, so a chunk's records depend on nothing else.
    people = make_persons(np.random.default_rng([seed, 1]), persons, end_day)
    orgs = make_organizations(
        np.random.default_rng([seed, 2]), organizations, people, start_day, end_day
    )
    writers = _YearWriters(out, start, end)
    subject_writer = pq.ParquetWriter(out / "subjects.parquet", _SUBJECT_SCHEMA)
    label_writer = pq.ParquetWriter(out / "labels.parquet", _LABEL_SCHEMA)
    total = persons + organizations
    done = 0
    chunk_no = 0
    for is_person, size in ((True, persons), (False, organizations)):
        for lo in range(0, size, chunk_subjects):
            rows = slice(lo, min(lo + chunk_subjects, size))
            rng = np.random.default_rng([seed, 3, chunk_no])
            table, subjects, labels = _chunk(
                rng, chunk_no, is_person, rows, people, orgs, start_day, end_day, label_day
            )
            writers.write(table)
            subject_writer.write_table(subjects)
            if labels is not None:
                label_writer.write_table(labels)
            chunk_no += 1
            done += rows.stop - rows.start
            if progress:
                progress(done, total)
    subject_writer.close()
    label_writer.close()
    files = writers.close()
    sources_path = out / "sources.json"
    sources_path.write_text(
        json.dumps([{"source_id": s, "kind": k} for s, k in sources()], indent=2) + "\n"
    )
    label_date = date.fromordinal(date(1970, 1, 1).toordinal() + label_day)
    return CityFiles(
        out,
        files,
        sources_path,
        out / "subjects.parquet",
        out / "labels.parquet",
        persons,
        organizations,
        start,
        end,
        label_date,
        seed,
    )


_SUBJECT_SCHEMA = pa.schema(
    [
        ("subject_id", pa.string()),
        ("kind", pa.string()),
        ("birth_date", pa.date32()),  # founding date for organizations
        ("residence", pa.string()),
        ("risk", pa.float32()),
    ]
)
_LABEL_SCHEMA = pa.schema([("subject_id", pa.string()), ("defaulted_next_12m", pa.bool_())])


def _chunk(
    rng: np.random.Generator,
    chunk_no: int,
    is_person: bool,
    rows: slice,
    people: Persons,
    orgs: Organizations,
    start_day: int,
    end_day: int,
    label_day: int,
) -> tuple[pa.Table, pa.Table, pa.Table | None]:
    if is_person:
        ids = people.ids(rows)
        s = Subjects(
            True,
            people.birth_day[rows].astype(np.float64),
            people.risk[rows],
            people.residence[rows],
            start_day,
            end_day,
        )
    else:
        ids = pa.array(orgs.subject_id[rows], pa.string())
        s = Subjects(
            False,
            orgs.founded_day[rows].astype(np.float64),
            orgs.risk[rows],
            orgs.residence[rows],
            start_day,
            end_day,
        )
    chunk = Chunk(chunk_no, ids)
    if is_person:
        person_registry(rng, chunk, s)
    else:
        organization_registry(rng, chunk, s, orgs, rows, people)
    courts(rng, chunk, s)
    loans(rng, chunk, s)
    municipal(rng, chunk, s)
    subjects = pa.table(
        {
            "subject_id": ids,
            "kind": pa.array(["person" if is_person else "organization"] * len(ids)),
            "birth_date": pa.array(s.born.astype(np.int32), pa.int32()).cast(pa.date32()),
            "residence": pa.array(np.array(RESIDENCE_CODES)[s.residence]),
            "risk": pa.array(s.risk, pa.float32()),
        },
        schema=_SUBJECT_SCHEMA,
    )
    labels = None
    if is_person:
        hit = np.zeros(len(ids), dtype=bool)
        for r, d in s.defaults:
            inside = (d > label_day) & (d <= label_day + 365)
            hit[r[inside]] = True
        adult = (label_day - s.born) >= 18 * 365.25
        labels = pa.table(
            {"subject_id": ids.filter(pa.array(adult)), "defaulted_next_12m": hit[adult]},
            schema=_LABEL_SCHEMA,
        )
    return chunk.table(), subjects, labels


def labels(city: CityFiles | str | Path) -> pa.Table:
    """The ground truth for the commercial scorecard: for every person adult on
    ``label_at`` (default a year before the end), whether they defaulted in the
    12 months after it (a payment 90+ days past due, a contract, guarantee or
    private-lending breach, or a court listing)."""
    path = city.labels_path if isinstance(city, CityFiles) else Path(city) / "labels.parquet"
    return pq.read_table(path)


def label_rate(city: CityFiles) -> float:
    table = labels(city)
    return float(pc.mean(pc.cast(table.column("defaulted_next_12m"), pa.float64())).as_py())
