"""Issue 13: several processes on one PostgreSQL registry at once.

8 importer processes (each its own sources, and each re-sending another's file)
and 4 checker processes (4 and 2 under CI) run together on one database. Afterwards every record is
in the ledger once, no check failed, and the evaluation answers what a
single-process run on a DuckDB file answers. Real processes, a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import pg_database
from xinyong.cli import _register, app
from xinyong.ledger.intake import import_file, register_source
from xinyong.ledger.store import Store
from xinyong.sim import generate_city

_register()
runner = CliRunner()

# Under CI (two cores, 20 minutes for everything) half as many processes: still
# importers racing on shared re-sends while checkers read.
IMPORTERS = 4 if os.environ.get("CI") else 8
CHECKERS = 2 if os.environ.get("CI") else 4
AS_OF = "2026-11-01"
SERVICES = ("flight", "rail.high_speed", "procurement.bid")

IMPORTER = textwrap.dedent(
    """
    import json, sys
    from datetime import datetime
    from xinyong.ledger.intake import import_file
    from xinyong.ledger.store import Store
    url, plan = sys.argv[1], json.loads(sys.argv[2])
    with Store(url) as store:
        for path, recorded_at in plan:
            result = import_file(store, path, progress=False,
                                 recorded_at=datetime.fromisoformat(recorded_at))
            assert result.rejected == 0, [r.as_dict() for r in result.rejects[:3]]
    """
)

CHECKER = textwrap.dedent(
    """
    import sys
    from datetime import datetime
    from xinyong.checks import check
    from xinyong.ledger.store import Store
    url, subjects = sys.argv[1], sys.argv[2].split(",")
    for subject in subjects:
        with Store(url, read_only=True) as store:
            for service in ("flight", "rail.high_speed"):
                check(store, subject, service, at=datetime(2026, 6, 1))
    """
)


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return generate_city(tmp_path_factory.mktemp("city"), persons=120, organizations=8, seed=3)


def _split_by_source(city: Any, folder: Path) -> dict[str, list[tuple[str, str]]]:
    """Each year file cut into one file per source: source -> [(path, recorded_at)]."""
    plans: dict[str, list[tuple[str, str]]] = {}
    for year in city.years:
        table = pq.read_table(year.path)
        for source in pc.unique(table.column("source")).to_pylist():
            part = table.filter(pc.equal(table.column("source"), source))
            path = folder / f"{year.year}-{source.replace(':', '_')}.parquet"
            pq.write_table(part, path)
            plans.setdefault(source, []).append((str(path), year.recorded_at.isoformat()))
    return plans


def _evaluated(db: str) -> dict[str, list[tuple[Any, ...]]]:
    code = runner.invoke(app, ["evaluate", "--as-of", AS_OF, "--db", db, "--json"]).exit_code
    assert code == 0
    with Store(db, read_only=True) as store:
        return {
            "consequences": sorted(
                store.sql.execute(
                    "SELECT system, subject_id, service, effect, rule_id, basis_id, since, until "
                    "FROM consequences"
                ).fetchall(),
                key=repr,
            ),
            "scores": sorted(
                (system, subject, None if score is None else round(score, 6), grade)
                for system, subject, score, grade in store.sql.execute(
                    "SELECT system, subject_id, score, grade FROM scores"
                ).fetchall()
            ),
            "list_entries": sorted(
                store.sql.execute(
                    "SELECT system, list_id, subject_id, entry_record_id, start_at, end_at "
                    "FROM list_entries"
                ).fetchall(),
                key=repr,
            ),
        }


def _answers(db: str, subjects: list[str]) -> list[Any]:
    from xinyong.checks import check

    with Store(db, read_only=True) as store:
        return [
            check(store, s, service, at=datetime(2025, 6, 1)).model_dump(mode="json")
            for s in subjects
            for service in SERVICES
        ]


@pytest.fixture
def url() -> Iterator[str]:
    with pg_database() as made:
        yield made


def test_concurrent_importers_and_checkers(city: Any, url: str, tmp_path: Path) -> None:
    assert runner.invoke(app, ["init", "--db", url]).exit_code == 0
    with Store(url) as store:
        for source_id, kind in city.sources:
            register_source(store, source_id, kind)
    plans = _split_by_source(city, tmp_path)
    sources = sorted(plans)
    shares: list[list[tuple[str, str]]] = [[] for _ in range(IMPORTERS)]
    for i, source in enumerate(sources):
        shares[i % IMPORTERS] += plans[source]
    # overlapping re-sends: each importer also sends the first file of the next one
    work = [share + shares[(i + 1) % IMPORTERS][:1] for i, share in enumerate(shares)]
    subjects = pq.read_table(city.subjects_path).column("subject_id").to_pylist()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", IMPORTER, url, json.dumps(plan)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for plan in work
        if plan
    ]
    procs += [
        subprocess.Popen(
            [sys.executable, "-c", CHECKER, url, ",".join(subjects[i::CHECKERS][:3])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(CHECKERS)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-3000:]

    total = sum(pq.read_metadata(y.path).num_rows for y in city.years)
    with Store(url, read_only=True) as store:
        rows = store.sql.execute("SELECT count(*), count(DISTINCT record_id) FROM records")
        assert rows.fetchone() == (total, total)
        batches = store.sql.execute("SELECT sum(accepted), sum(rejected) FROM batches")
        assert batches.fetchone() == (total, 0)

    # the same files, one process, one after another, into a DuckDB file
    single = str(tmp_path / "single.duckdb")
    assert runner.invoke(app, ["init", "--db", single]).exit_code == 0
    with Store(single) as store:
        for source_id, kind in city.sources:
            register_source(store, source_id, kind)
        for year in city.years:
            import_file(store, year.path, progress=False, recorded_at=year.recorded_at)
    assert _evaluated(url) == _evaluated(single)
    sample = subjects[:: max(1, len(subjects) // 25)]
    assert _answers(url, sample) == _answers(single, sample)
    assert pa.table({"s": sample}).num_rows > 0
