"""The same evaluation on DuckDB, PostgreSQL and Spark gives the same registry.

One registry holds a small synthetic city (xinyong.sim) and every case of the
shipped packs' scenario files (each case's subjects renamed to identities of its
own, so that cases never see each other's records). It is evaluated on each
engine and materialized into a copy of the registry; the scores, grades, list
entries (with their periods) and consequences must be identical, row for row.

PostgreSQL 15 is a real server (XINYONG_TEST_PG, default the local socket as user
postgres): the test creates a database of its own and drops it. Spark runs in
local mode (Java 17), one session for the whole test session.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ric_check
from xinyong.engine import materialize
from xinyong.engine.backends import evaluate_on
from xinyong.ledger.intake import import_file, register_source, submit
from xinyong.ledger.store import Store
from xinyong.packs import install_pack, shipped_pack_paths
from xinyong.packs.scenarios import (
    _recorded_at,
    _records,
    _source_kinds,
    load_scenario,
    shipped_scenario_paths,
)
from xinyong.sim import generate_city
from xinyong.sim.identifiers import uscc
from xinyong.timeutil import parse_instant

PG_SERVER = os.environ.get("XINYONG_TEST_PG", "postgresql://postgres@/postgres")
#: One instant inside the scenarios' years (entries in force, grace periods running),
#: one at the city's end.
AS_OF = ("2024-06-01", "2026-11-01")
TABLES = ("scores", "score_timeline", "list_entries", "consequences")


class _Renamer:
    """Gives each scenario case identities of its own: a person keeps birth date,
    address and sex (the sequence number's parity), an organization its prefix."""

    def __init__(self) -> None:
        self.count = 0

    def case(self) -> dict[str, str]:
        return {}

    def subject(self, ids: dict[str, str], old: str) -> str:
        if old not in ids:
            self.count += 1
            if len(old) == 18 and old[:17].isdigit():
                seq = 500 + 2 * self.count % 498 + int(old[16]) % 2
                head = old[:14] + f"{seq:03d}"
                ids[old] = head + ric_check(head)
            else:
                ids[old] = uscc(old[0], old[1], old[2:8], f"{self.count:08d}")
        return ids[old]


def _renamed(record: dict[str, Any], ids: dict[str, str], rn: _Renamer, case: int) -> Any:
    out = dict(record)
    out["record_id"] = f"c{case}-{record['record_id']}"
    out["subject_id"] = rn.subject(ids, str(record["subject_id"]))
    attrs = dict(record.get("attributes") or {})
    if "person_id" in attrs:
        attrs["person_id"] = rn.subject(ids, str(attrs["person_id"]))
    if "target_record_id" in attrs:
        attrs["target_record_id"] = f"c{case}-{attrs['target_record_id']}"
    out["attributes"] = attrs
    return out


def _add_scenarios(store: Store) -> int:
    """Every case of every shipped scenario file, renamed; returns the cases added."""
    rn = _Renamer()
    cases = 0
    for path in shipped_scenario_paths():
        scn = load_scenario(path)
        for source_id, kind in _source_kinds(scn).items():
            register_source(store, source_id, kind)
        for case in scn.cases:
            cases += 1
            ids = rn.case()
            for step in case.steps:
                records = _records(step, scn.defaults)
                kept = [
                    _renamed(r, ids, rn, cases)
                    for r in records
                    if r.get("record_id") not in step.rejected
                ]
                result = submit(store, kept, recorded_at=_recorded_at(step, records))
                assert result.rejected == 0, (path.name, case.id, result.rejects)
    return cases


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("engines")
    city = generate_city(root / "city", persons=200, organizations=12, seed=7)
    db = root / "registry.duckdb"
    with Store(db) as store:
        for path in shipped_pack_paths():
            install_pack(store, path)
        for item in json.loads((Path(city.out_dir) / "sources.json").read_text()):
            register_source(store, item["source_id"], item["kind"])
        for f in sorted(Path(city.out_dir).glob("records-*.parquet")):
            assert import_file(store, f, progress=False).rejected == 0
        assert _add_scenarios(store) > 50
    return db


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    import psycopg

    name = f"xinyong_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_SERVER, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    base = PG_SERVER.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _materialized(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Each materialized table's rows, in one order (every column, NULLs last)."""
    with Store(db, read_only=True) as store:
        out = {}
        for table in TABLES:
            rows = [tuple(r.values()) for r in store.table(table).to_pyarrow().to_pylist()]
            rows.sort(key=lambda r: tuple((v is None, str(v)) for v in r))
            out[table] = rows
        return out


def _run(
    engine: str, registry: Path, tmp: Path, as_of: str, pg: str | None, timeline: bool = True
) -> Any:
    db = tmp / f"{engine}-{as_of}-{timeline}.duckdb"
    shutil.copy(registry, db)
    with Store(db) as store:
        ev = evaluate_on(
            engine,
            store,
            as_of=parse_instant(as_of),
            pg_url=pg,
            spark_master="local[2]",
            timeline=timeline,
        )
        materialize(store, ev)
    return _materialized(db)


@pytest.fixture(scope="session")
def duckdb_results(registry: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("duckdb")
    # Timelines at every instant (what PostgreSQL is compared with), and one run as of
    # the first instant only (what Spark evaluates: engine/backends.evaluate_on).
    out: dict[str, Any] = {a: _run("duckdb", registry, tmp, a, None) for a in AS_OF}
    out["point"] = _run("duckdb", registry, tmp, AS_OF[0], None, timeline=False)
    return out


@pytest.mark.parametrize("engine", ["postgres", "spark"])
def test_same_results_on_every_engine(
    engine: str,
    registry: Path,
    duckdb_results: dict[str, Any],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    pg = request.getfixturevalue("pg_url") if engine == "postgres" else None
    # Spark runs one instant only, as of that instant (no timeline): each run costs it
    # a minute of query planning here (CI time); the scenario-dense instant is the one
    # that tells engines apart.
    spark = engine == "spark"
    for as_of in AS_OF if not spark else AS_OF[:1]:
        want = duckdb_results["point" if spark else as_of]
        # The registry has something to compare: scores with grades, entries, consequences.
        assert any(r[3] is not None for r in want["scores"])
        assert want["list_entries"] and want["consequences"]
        assert spark or want["score_timeline"]
        got = _run(engine, registry, tmp_path, as_of, pg, timeline=not spark)
        for table in TABLES:
            assert got[table] == want[table], f"{engine} {table} as of {as_of}"


def test_cli_evaluate_on_postgres(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`xinyong evaluate --engine postgres` writes what checks read; a bad engine or a
    missing database URL is refused (exit 1, one line) and writes nothing."""
    from typer.testing import CliRunner

    from conftest import make_person_id
    from xinyong.cli import _register, app

    _register()
    runner = CliRunner()
    monkeypatch.delenv("XINYONG_PG_URL", raising=False)
    db = str(tmp_path / "r.duckdb")
    debtor = make_person_id()
    court = "court:371082-rongcheng"
    record = {
        "record_id": "c1",
        "subject_id": debtor,
        "type": "court.listing_decision",
        "occurred_at": "2024-03-01",
        "source": court,
        "attributes": {"case_no": "(2024)鲁1082执100号", "ground": "able_but_refuses"},
    }
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n", "utf-8")
    for args in (["init"], ["sources", "add", court, "--kind", "court"], ["import", str(path)]):
        assert runner.invoke(app, [*args, "--db", db]).exit_code == 0
    for args, message in (
        (["--engine", "nope"], "--engine nope: expected one of duckdb, postgres, spark"),
        (["--engine", "postgres"], "--engine postgres needs --pg-url"),
    ):
        result = runner.invoke(app, ["evaluate", *args, "--as-of", "2024-06-01", "--db", db])
        assert result.exit_code == 1
        assert message in (result.stderr or "") + (result.stdout or "")
    with Store(db, read_only=True) as store:
        assert store.sql.execute("SELECT count(*) FROM eval_runs").fetchone() == (0,)
    result = runner.invoke(
        app,
        ["evaluate", "--engine", "postgres", "--pg-url", pg_url, "--as-of", "2024-06-01"]
        + ["--json", "--db", db],
    )
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["engine"] == "postgres"
    result = runner.invoke(
        app, ["check", debtor, "flight", "--at", "2024-06-01", "--json", "--db", db]
    )
    assert json.loads(result.stdout)["decision"] == "deny"


def test_a_killed_evaluations_scratch_schema_is_swept_a_running_ones_kept(pg_url: str) -> None:
    """An evaluation killed on PostgreSQL leaves its scratch schema behind; the next
    evaluation drops it, but never the schema of one still running (whose session
    holds the schema's advisory lock)."""
    import psycopg

    from xinyong.engine.backends import sweep_abandoned_schemas

    with psycopg.connect(pg_url) as running, psycopg.connect(pg_url) as sweeper:
        running.execute("SELECT pg_advisory_lock(hashtext('xinyong_eval_00000000live'))")
        running.execute("CREATE SCHEMA xinyong_eval_00000000live")
        running.execute("CREATE SCHEMA xinyong_eval_0000000dead")
        running.execute("CREATE SCHEMA keep_me")
        running.commit()
        assert sweep_abandoned_schemas(sweeper) == ["xinyong_eval_0000000dead"]
        names = {r[0] for r in sweeper.execute("SELECT nspname FROM pg_namespace").fetchall()}
        assert "xinyong_eval_00000000live" in names and "keep_me" in names
        assert "xinyong_eval_0000000dead" not in names
        running.execute("DROP SCHEMA xinyong_eval_00000000live")
        running.execute("DROP SCHEMA keep_me")
        running.commit()


def _new_batch(store: Store) -> list[dict[str, Any]]:
    """Records that reach beyond their subject: a listing of an organization with a
    legal representative, a revocation of another subject's listing, and a red light."""
    org, source = store.sql.execute(
        "SELECT r.subject_id, min(l.source) FROM records r JOIN records l "
        "ON l.subject_id = r.subject_id AND l.type = 'court.listing_decision' "
        "WHERE r.type = 'registry.legal_representative' GROUP BY r.subject_id "
        "ORDER BY r.subject_id LIMIT 1"
    ).fetchone()
    target, target_source = store.sql.execute(
        "SELECT record_id, source FROM records WHERE type = 'court.listing_decision' "
        "AND subject_id <> ? ORDER BY record_id LIMIT 1",
        [org],
    ).fetchone()
    person, red_source = store.sql.execute(
        "SELECT subject_id, source FROM records WHERE type = 'traffic.red_light' "
        "ORDER BY record_id LIMIT 1"
    ).fetchone()
    return [
        {
            "record_id": "inc-l1",
            "subject_id": org,
            "type": "court.listing_decision",
            "occurred_at": "2026-10-01",
            "source": source,
            "attributes": {"case_no": "(2026)鲁1082执900号", "ground": "able_but_refuses"},
        },
        {
            "record_id": "inc-v1",
            "subject_id": person,
            "type": "record.revoked",
            "occurred_at": "2026-10-02",
            "source": target_source,
            "attributes": {"target_record_id": target, "reason": "wrongly listed"},
        },
        {
            "record_id": "inc-t1",
            "subject_id": person,
            "type": "traffic.red_light",
            "occurred_at": "2026-10-03",
            "source": red_source,
            "attributes": {"ticket_no": "inc-1"},
        },
    ]


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_incremental_evaluation_equals_a_full_one(
    engine: str, registry: Path, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Issue 8 item 3 and issue 13 item 3: after an import, an incremental evaluation
    (on DuckDB, or on PostgreSQL from a copy of only the changed subjects' records)
    writes the registry a full evaluation writes."""
    from xinyong.engine.incremental import evaluate_registry

    pg = request.getfixturevalue("pg_url") if engine == "postgres" else None
    inc, full = tmp_path / "inc.duckdb", tmp_path / "full.duckdb"
    shutil.copy(registry, inc)
    as_of = parse_instant(AS_OF[1])
    with Store(inc) as store:
        assert evaluate_registry(store, as_of=as_of).mode == "full"
        result = submit(store, _new_batch(store))
        assert result.accepted == 3, result.rejects
    shutil.copy(inc, full)
    with Store(inc) as store:
        out = evaluate_registry(store, engine, as_of=as_of, pg_url=pg)
        subjects = store.sql.execute("SELECT count(DISTINCT subject_id) FROM records").fetchone()
    assert out.mode == "incremental", out.why
    assert subjects and 3 <= out.subjects_recomputed < subjects[0] / 10
    with Store(full) as store:
        assert evaluate_registry(store, as_of=as_of, full=True).mode == "full"
    assert _materialized(inc) == _materialized(full)
