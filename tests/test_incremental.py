"""Issue 8 item 3: incremental evaluation equals a full one.

Random small ledgers, cut into a sequence of import batches (revocations, relation
and transfer records, consent records, records of different ages so that windows
and retention matter, persons crossing 18): after each batch one registry is
evaluated incrementally (``evaluate_registry``), a second one holding the same
batches in full, and the four materialized tables must be equal, row for row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_person_id
from test_engine_property import instant, ledgers, packs
from test_engine_support import insert, rec
from xinyong.engine import compiled
from xinyong.engine.incremental import TABLES, changed_subjects, evaluate_registry
from xinyong.ledger.store import Store
from xinyong.packs.schema import Pack

# Each example evaluates both registries after every batch (a few seconds of query
# compilation each): CI replays a few fixed examples, a developer's run explores more.
CI = os.environ.get("CI") == "true"
EXAMPLES = int(os.environ.get("XINYONG_INCREMENTAL_EXAMPLES", "3" if CI else "10"))

DEBTOR = make_person_id(date(1971, 3, 4), 51)
OTHER = make_person_id(date(1972, 5, 6), 52)
COURT = "court:371082-rongcheng"
#: How often an incremental run recomputed subjects through the compiled plans.
PATHS = {"compiled": 0}


def _clear(store: Store) -> None:
    for table in ("records", "batches", "packs", "eval_runs", *TABLES):
        store.sql.execute(f"DELETE FROM {table}")


@pytest.fixture(scope="module")
def stores() -> Iterator[tuple[Store, Store]]:
    with Store(":memory:") as a, Store(":memory:") as b:
        for s in (a, b):
            s.sql.execute("SET threads = 1")  # the same float sums in both
        yield a, b


def install(store: Store, pack: Pack) -> None:
    body = yaml.safe_dump(pack.model_dump(mode="json", by_alias=True, exclude_none=True))
    store.sql.execute(
        "INSERT INTO packs VALUES (?, ?, ?, ?, 'x', ?)",
        [pack.system, pack.meta.version, pack.meta.effective_from, body, datetime(2000, 1, 1)],
    )


def add_batch(store: Store, batch_id: int, records: list[dict[str, Any]], at: datetime) -> None:
    """A batch as intake commits it: one recorded_at for its records, a batches row."""
    insert(store, [{**r, "recorded_at": at} for r in records], batch_id=batch_id)
    store.sql.execute(
        "INSERT INTO batches VALUES (?, 'test', ?, ?, 0, 0)", [batch_id, at, len(records)]
    )


def tables(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    return {t: sorted(store.sql.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=CI,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(records=ledgers(), p=packs(), data=st.data())
def test_incremental_equals_full(
    stores: tuple[Store, Store], records: list[dict[str, Any]], p: Pack, data: Any
) -> None:
    inc, ref = stores
    for s in (inc, ref):
        _clear(s)
        install(s, p)
    timeline = data.draw(st.booleans(), "timeline")
    records = sorted(records, key=lambda r: r["recorded_at"])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(records)), max_size=3), "cuts"))
    batches = [records[a:b] for a, b in zip([0, *cuts], [*cuts, len(records)], strict=True)]
    known = datetime(2017, 1, 1)
    as_of = instant(data.draw)
    for batch_id, batch in enumerate(batches, start=1):
        if batch:
            known = max(known, max(r["recorded_at"] for r in batch))
        for s in (inc, ref):
            add_batch(s, batch_id, batch, known)
        if timeline:  # a timeline run may move its as_of; a point run that does is full
            as_of = data.draw(st.sampled_from([as_of, known, instant(data.draw)]), "as_of")
        compiled.events.clear()
        got = evaluate_registry(inc, as_of=as_of, known_at=known, timeline=timeline)
        want = evaluate_registry(ref, as_of=as_of, known_at=known, timeline=timeline, full=True)
        assert want.mode == "full"
        if got.mode == "incremental" and got.subjects_recomputed:
            # The compiled plans ran, inserting straight into the materialized tables.
            assert got.how == "compiled" or _not_compilable(inc, p, timeline), got
            assert any(e[0] == "inserted" for e in compiled.events)
            PATHS["compiled"] += 1
        if batch_id > 1 and got.mode == "full":
            assert got.why and "packs in force" in got.why  # an effective date passed
        assert tables(inc) == tables(ref), (batch_id, got)


def _not_compilable(store: Store, pack: Pack, timeline: bool) -> bool:
    """Whether the pack's plan cannot be compiled (the evaluation is the fallback)."""
    try:
        compiled.plan_for(store, pack, "timeline" if timeline else "point")
    except compiled.NotCompilable:
        return True
    return False


def test_a_revocation_recomputes_the_subject_of_the_revoked_record() -> None:
    """A record acting on another subject's record (here a revocation filed on P1's
    file revoking O1's listing), the persons named on O1's records (its legal
    representatives, a transferee) are recomputed too; nothing else."""
    at = datetime(2024, 1, 1)
    with Store(":memory:") as store:
        first = [
            rec("O1", "court.listing_decision", at, record_id="l1", case_no="c1"),
            rec("O1", "registry.legal_representative", at, record_id="g1", person_id="P2"),
            rec("O2", "registry.legal_representative", at, record_id="g2", person_id="P4"),
            rec("P3", "traffic.red_light", at, record_id="t1", ticket_no="x"),
        ]
        add_batch(store, 1, first, at)
        later = at + timedelta(days=1)
        add_batch(
            store,
            2,
            [
                rec("P1", "record.revoked", later, record_id="v1", target_record_id="l1"),
                rec("O1", "court.restriction_transferred", later, case_no="c1", person_id="P5"),
            ],
            later,
        )
        assert changed_subjects(store, 1, later) == ["O1", "P1", "P2", "P5"]
        assert changed_subjects(store, 2, later) == []
        assert changed_subjects(store, None, later) == ["O1", "O2", "P1", "P2", "P3", "P4", "P5"]


# ---------------------------------------------------------------------------
# the command: mode, why, --full, and when a run is a full one


def _cli(db: Path, *args: str) -> dict[str, Any]:
    from typer.testing import CliRunner

    from xinyong.cli import _register, app

    _register()
    result = CliRunner().invoke(app, [*args, "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _listing(rid: str, subject: str, day: str) -> dict[str, Any]:
    return {
        "record_id": rid,
        "subject_id": subject,
        "type": "court.listing_decision",
        "occurred_at": day,
        "source": COURT,
        "attributes": {"case_no": f"(2024)鲁1082执{rid}号", "ground": "able_but_refuses"},
    }


def _import(db: Path, *records: dict[str, Any]) -> None:
    path = db.with_name(f"in-{len(list(db.parent.iterdir()))}.jsonl")
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    _cli(db, "import", str(path))


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    """The judicial pack alone (each evaluate compiles fewer queries), two debtors."""
    from xinyong.packs import install_pack, shipped_pack_paths

    db = tmp_path / "r.duckdb"
    with Store(db) as store:
        install_pack(store, next(p for p in shipped_pack_paths() if p.name == "judicial.yaml"))
    _cli(db, "sources", "add", COURT, "--kind", "court")
    _import(db, _listing("1", DEBTOR, "2024-03-01"))
    return db


def test_evaluate_is_incremental_after_an_import_and_full_when_asked(registry: Path) -> None:
    first = _cli(registry, "evaluate")
    assert (first["mode"], first["why"]) == ("full", "no earlier run")
    _import(registry, _listing("2", OTHER, "2024-06-01"))
    second = _cli(registry, "evaluate")
    assert second["mode"] == "incremental" and second["subjects_recomputed"] == 1
    assert (first["recomputed_by"], second["recomputed_by"]) == ("full", "compiled")
    assert second["run_id"] == 2
    assert (first["systems"]["judicial"]["entries"], second["systems"]["judicial"]["entries"]) == (
        1,
        2,
    )
    assert _cli(registry, "evaluate")["subjects_recomputed"] == 0  # nothing new
    with Store(registry, read_only=True) as store:
        incremental = tables(store)
    forced = _cli(registry, "evaluate", "--full")
    assert (forced["mode"], forced["why"]) == ("full", "--full asked for")
    assert forced["systems"] == second["systems"]
    with Store(registry, read_only=True) as store:
        assert tables(store) == incremental  # the compiled recompute equals a full run
    # The new listing answers from the snapshot the incremental run published.
    from xinyong.access import operations as ops
    from xinyong.access.principals import local_operator
    from xinyong.timeutil import parse_instant

    answer = ops.check(
        ops.Registry(registry), local_operator(), OTHER, "flight", at=parse_instant("2025-01-01")
    )
    assert (answer.answered_from, answer.decision) == ("snapshot", "deny")


def test_a_purge_or_a_new_pack_makes_the_next_run_full(registry: Path) -> None:
    from xinyong.packs import install_pack, shipped_pack_paths

    _cli(registry, "evaluate")
    with Store(registry) as store:  # what a purge leaves: fewer records, a tombstone
        store.sql.execute(
            "CREATE TABLE IF NOT EXISTS tombstones (record_id VARCHAR, type VARCHAR, "
            "subject_id VARCHAR, occurred_at TIMESTAMP, recorded_at TIMESTAMP, "
            "retention_end TIMESTAMP, purged_at TIMESTAMP, rule VARCHAR, legal_basis VARCHAR)"
        )
        store.sql.execute("INSERT INTO tombstones VALUES ('x', 't', 's', now(), now(), now(), "
                          "now(), 'r', 'b')")  # fmt: skip
    out = _cli(registry, "evaluate")
    assert (out["mode"], out["why"]) == ("full", "records purged since run 1")
    assert _cli(registry, "evaluate")["mode"] == "incremental"
    with Store(registry) as store:
        install_pack(store, next(p for p in shipped_pack_paths() if p.name == "rongcheng.yaml"))
    out = _cli(registry, "evaluate")
    assert (out["mode"], out["why"]) == ("full", "packs installed since run 3")


def test_a_schema_3_registry_migrates_and_then_evaluates_in_full(registry: Path) -> None:
    """Schema 4 (issue 8 item 3) records how each run was made; a run made before it
    cannot be extended (it recorded no purge count)."""
    from xinyong.ledger.store import SCHEMA_VERSION, migrate

    _cli(registry, "evaluate")
    with Store(registry) as store:  # what a schema 3 registry looked like
        for column in ("mode", "purged", "subjects_recomputed"):
            store.sql.execute(f"ALTER TABLE eval_runs DROP COLUMN {column}")
        store.sql.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    assert SCHEMA_VERSION == 4
    assert [v for v, _ in migrate(registry)] == [3]
    out = _cli(registry, "evaluate")
    assert (out["mode"], out["why"]) == ("full", "run 1 predates incremental evaluation")
    with Store(registry) as store:
        rows = store.sql.execute("SELECT run_id, mode FROM eval_runs ORDER BY 1").fetchall()
    assert rows == [(1, None), (2, "full")]
