"""DuckDB's memory limit during an evaluation (XINYONG_EVAL_MEMORY, ledger/memory.py):
the evaluation runs under it, a value that is not a size is refused before anything
is written, and the registry's own setting comes back afterwards."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from conftest import make_person_id
from test_engine_support import insert, rec
from xinyong.engine.incremental import evaluate_registry
from xinyong.ledger import memory
from xinyong.ledger.store import Store
from xinyong.packs import install_pack, shipped_pack_paths

DEBTOR = make_person_id(date(1971, 3, 4), 51)


def _registry(path: Path) -> Store:
    store = Store(path)
    for pack in shipped_pack_paths():
        install_pack(store, pack)
    insert(
        store,
        [
            rec(
                DEBTOR,
                "court.listing_decision",
                datetime(2024, 3, 1),
                record_id="l1",
                birth_date=date(1971, 3, 4),
                case_no="(2024)鲁1082执1号",
                ground="able_but_refuses",
            )
        ],
    )
    return store


def _limit(store: Store) -> str:
    row = store.sql.execute("SELECT current_setting('memory_limit')").fetchone()
    assert row is not None
    return str(row[0])


def test_evaluation_runs_under_the_limit_and_restores_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    real = memory.duckdb_memory

    def spy(con, setting):  # type: ignore[no-untyped-def]
        cm = real(con, setting)

        class Watch:
            def __enter__(self) -> None:
                cm.__enter__()
                seen.append(
                    str(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])
                )

            def __exit__(self, *exc: object) -> None:
                cm.__exit__(*exc)

        return Watch()

    monkeypatch.setenv("XINYONG_EVAL_MEMORY", "300MiB")
    monkeypatch.setattr("xinyong.engine.incremental.duckdb_memory", spy)
    with _registry(tmp_path / "reg.duckdb") as store:
        before = _limit(store)
        outcome = evaluate_registry(store, as_of=datetime(2026, 11, 1))
        assert outcome.mode == "full"
        assert seen and seen[0].replace(" ", "") in {"300.0MiB", "314.5MB", "300MiB"}, seen
        assert _limit(store) == before
        rows = store.sql.execute(
            "SELECT list_id FROM list_entries WHERE subject_id = ?", [DEBTOR]
        ).fetchall()
        assert ("dishonest_debtors",) in rows  # the evaluation ran whole under the limit


@pytest.mark.parametrize("value", ["lots", "1GB'; DROP TABLE records; --", "-5GiB"])
def test_a_limit_that_is_not_a_size_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("XINYONG_EVAL_MEMORY", value)
    with _registry(tmp_path / "reg.duckdb") as store:
        with pytest.raises(ValueError, match="XINYONG_EVAL_MEMORY"):
            evaluate_registry(store, as_of=datetime(2026, 11, 1))
        assert store.sql.execute("SELECT count(*) FROM eval_runs").fetchone() == (0,)
        assert store.sql.execute("SELECT count(*) FROM list_entries").fetchone() == (0,)


def test_the_default_never_exceeds_the_machine() -> None:
    value = memory.limit("XINYONG_EVAL_MEMORY")
    assert value.endswith("MiB") and 0 < int(value[:-3]) <= 5 * 1024
