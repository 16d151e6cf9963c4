"""Staging (engine/staging.py): a whole-registry evaluation on DuckDB computes what
its packs share once, as temporary tables, and leaves out a pack with nothing in
its scope. Its results must be those of the same evaluation unstaged: an
evaluation restricted to subjects is not staged, so asking for every subject
gives the lazy expressions' answer on the same ledger."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from test_engine_support import rows
from xinyong.engine import evaluate, materialize
from xinyong.ledger.intake import import_file, register_source
from xinyong.ledger.store import Store
from xinyong.packs import install_pack, shipped_pack_paths
from xinyong.sim import generate_city
from xinyong.timeutil import parse_instant

AS_OF = parse_instant("2026-11-01")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("staging")
    city = generate_city(root / "city", persons=150, organizations=10, seed=11)
    db = root / "registry.duckdb"
    with Store(db) as store:
        for path in shipped_pack_paths():
            install_pack(store, path)
        for item in json.loads((Path(city.out_dir) / "sources.json").read_text()):
            register_source(store, item["source_id"], item["kind"])
        for f in sorted(Path(city.out_dir).glob("records-*.parquet")):
            assert import_file(store, f, progress=False).rejected == 0
    return db


@pytest.fixture
def store(registry: Path, tmp_path: Path) -> Iterator[Store]:
    db = tmp_path / "copy.duckdb"
    shutil.copy(registry, db)
    with Store(db) as s:
        yield s


def _everyone(store: Store) -> list[str]:
    found = store.sql.execute(
        "SELECT subject_id FROM records UNION "
        "SELECT attr_person_id FROM records WHERE attr_person_id IS NOT NULL"
    ).fetchall()
    return sorted(r[0] for r in found)


def _temporary(store: Store) -> int:
    row = store.sql.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name LIKE '_xy_%'"
    ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("timeline", [False, True])
def test_a_staged_evaluation_gives_the_results_of_the_lazy_one(
    store: Store, timeline: bool
) -> None:
    staged = evaluate(store, as_of=AS_OF, timeline=timeline)
    lazy = evaluate(store, as_of=AS_OF, timeline=timeline, subjects=_everyone(store))
    assert staged.ledger is not None and staged.ledger.staged
    assert lazy.ledger is not None and not lazy.ledger.staged
    outputs: list[tuple[Any, Any]] = [
        (staged.scores, lazy.scores),
        (staged.list_entries, lazy.list_entries),
        (staged.consequences, lazy.consequences),
    ]
    if timeline:
        outputs.append((staged.score_timeline, lazy.score_timeline))
    for mine, theirs in outputs:
        got = rows(mine)
        assert got == rows(theirs)
    # Not vacuous: the city has scores, list entries and consequences.
    assert rows(staged.scores) and rows(staged.list_entries) and rows(staged.consequences)


def test_a_pack_with_nothing_in_its_scope_is_left_out(store: Store) -> None:
    # The synthetic city has no administrative penalty decisions.
    ev = evaluate(store, as_of=AS_OF)
    assert ev.pack_ledgers is not None
    assert ev.pack_ledgers["admin_penalty"] is None
    assert ev.pack_ledgers["judicial"] is not None and ev.pack_ledgers["rongcheng"] is not None
    for table in (ev.scores, ev.list_entries, ev.consequences):
        assert not [r for r in rows(table) if r["system"] == "admin_penalty"]
    # Materialized, it still leaves nothing of that pack and every other pack's rows.
    materialize(store, ev)
    systems = {r[0] for r in store.sql.execute("SELECT DISTINCT system FROM scores").fetchall()}
    assert systems == {"rongcheng", "commercial"}


def test_materialize_drops_the_staged_tables(store: Store) -> None:
    ev = evaluate(store, as_of=AS_OF, timeline=True)
    assert _temporary(store) > 0
    materialize(store, ev)
    assert _temporary(store) == 0
    counts = store.sql.execute("SELECT count(*) FROM score_timeline").fetchone()
    assert counts is not None and counts[0] > 0
