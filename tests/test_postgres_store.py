"""Issue 13: the registry on PostgreSQL (``--db postgresql://…``). A real server
(XINYONG_TEST_PG); every test makes its own database and drops it.

What a user relies on: the schema is the DuckDB registry's; a wrong URL, an
unreachable server, a database that is not a registry and an outdated one are
refused with one error line and a non-zero exit (never an empty registry that
allows everyone); `xinyong migrate` upgrades; a re-sent record is a duplicate, a
record_id re-sent with other content a conflict, and a file is committed whole or
not at all."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from conftest import PG_SERVER, make_person_id, pg_database
from xinyong.cli import _register, app
from xinyong.engine.incremental import evaluate_registry
from xinyong.ledger import commit
from xinyong.ledger.intake import register_source, submit
from xinyong.ledger.postgres import ALEMBIC_HEAD, PostgresStore, alembic_config
from xinyong.ledger.store import RegistryError, RegistryOutdated, Store

_register()
runner = CliRunner()

DEBTOR = make_person_id(date(1980, 2, 29), 31)
COURT = "court:371082-rongcheng"


def cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def one_error(err: str, *words: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], err


def listing(record_id: str, case: str, occurred: str = "2024-03-01") -> dict[str, object]:
    return {
        "record_id": record_id,
        "subject_id": DEBTOR,
        "type": "court.listing_decision",
        "occurred_at": occurred,
        "source": COURT,
        "attributes": {"case_no": case, "ground": "able_but_refuses"},
    }


@pytest.fixture
def url() -> Iterator[str]:
    with pg_database() as made:
        yield made


@pytest.fixture
def registry(url: str) -> str:
    code, out, err = cli("init", "--db", url, "--json")
    assert code == 0, err
    assert json.loads(out)["db"] == url  # as written, not as a folded path
    assert cli("sources", "add", COURT, "--kind", "court", "--db", url)[0] == 0
    return url


def test_schema_is_the_duckdb_registry_schema(tmp_path: Path, url: str) -> None:
    with Store(tmp_path / "r.duckdb") as duck:
        tables = [r[0] for r in duck.sql.execute("SHOW TABLES").fetchall()]
        want = {t: [r[0] for r in duck.sql.execute(f"DESCRIBE {t}").fetchall()] for t in tables}
    with Store(url) as pg:
        assert isinstance(pg, PostgresStore) and pg.backend == "postgresql"
        have = {t: [r[0] for r in pg.sql.execute(f"DESCRIBE {t}").fetchall()] for t in tables}
        # and the keys concurrent writers rely on
        keys = pg.sql.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'records'"
        ).fetchall()
    assert have == want
    assert any("UNIQUE" in k[0] and "(record_id)" in k[0] for k in keys)
    assert any("(subject_id)" in k[0] for k in keys)


def test_the_required_revision_is_the_migrations_head() -> None:
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == ALEMBIC_HEAD


def test_an_unreachable_server_or_missing_database_is_refused() -> None:
    base = PG_SERVER.rsplit("/", 1)[0]
    for bad in ("postgresql://postgres@127.0.0.1:1/xinyong", f"{base}/xinyong_no_such_db_h13"):
        code, out, err = cli("check", DEBTOR, "flight", "--db", bad, "--json")
        assert code == 1 and out == ""
        one_error(err, "cannot connect to the PostgreSQL registry")


def test_an_empty_database_answers_nothing_until_init(url: str) -> None:
    code, out, err = cli("check", DEBTOR, "flight", "--db", url, "--json")
    assert code == 1 and out == ""
    one_error(err, "no registry", "xinyong init")
    with psycopg.connect(url) as con:  # and nothing was created
        assert con.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone() == (0,)


def test_a_database_of_something_else_is_refused(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("CREATE TABLE customers (id int)")
    for args in (("check", DEBTOR, "flight"), ("init",), ("migrate",)):
        code, _, err = cli(*args, "--db", url)
        assert code == 1, args
        one_error(err, "not a xinyong registry")
    with psycopg.connect(url) as con:
        assert con.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone() == (1,)


def test_an_outdated_registry_is_refused_until_migrate(registry: str) -> None:
    column = "attr_case_no"
    with psycopg.connect(registry, autocommit=True) as con:
        con.execute(f"ALTER TABLE records DROP COLUMN {column}")
    with pytest.raises(RegistryOutdated, match="xinyong migrate"):
        Store(registry)
    code, _, err = cli("check", DEBTOR, "flight", "--db", registry)
    assert code == 1
    one_error(err, "xinyong migrate")
    code, out, err = cli("migrate", "--db", registry, "--json")
    assert code == 0, err
    assert any(column in step["what"] for step in json.loads(out)["steps"])
    with Store(registry, read_only=True) as store:
        assert store.has_packs()


def test_a_registry_newer_than_this_xinyong_is_refused(registry: str) -> None:
    with psycopg.connect(registry, autocommit=True) as con:
        con.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(RegistryError, match="newer than this xinyong"):
        Store(registry)


def test_duplicates_conflicts_and_a_file_whole_or_not_at_all(
    registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(registry) as store:
        first = submit(store, [listing("c1", "(2024)鲁1082执100号"), listing("c2", "k2")])
        assert (first.accepted, first.duplicates, first.rejected) == (2, 0, 0)
        again = submit(
            store,
            [
                listing("c1", "(2024)鲁1082执100号"),  # the same: a duplicate
                listing("c2", "other case"),  # other content: a conflict
                listing("c3", "k3"),
                listing("c3", "k3"),  # twice in one input: once
            ],
        )
        assert (again.accepted, again.duplicates, again.rejected) == (1, 2, 1)
        assert again.rejects[0].record_id == "c2" and "conflict" in again.rejects[0].reason
        assert first.batch_id is not None and again.batch_id == first.batch_id + 1

        # a failure before COMMIT leaves nothing of the file
        def boom() -> None:
            raise RuntimeError("killed before commit")

        monkeypatch.setattr(commit, "_before_commit", boom)
        path = tmp_path / "more.jsonl"
        path.write_text("\n".join(json.dumps(listing(f"d{i}", f"k{i}")) for i in range(50)))
        code, _, _ = cli("import", str(path), "--db", registry)
        assert code != 0
        monkeypatch.setattr(commit, "_before_commit", None)
        count = store.sql.execute("SELECT count(*), count(DISTINCT record_id) FROM records")
        assert count.fetchone() == (3, 3)
        code, out, err = cli("import", str(path), "--db", registry, "--json")
        assert code == 0, err
        assert json.loads(out)["accepted"] == 50


def test_sources_and_evaluation_in_place(registry: str) -> None:
    with Store(registry) as store:
        register_source(store, "city:rongcheng", "city")
        with pytest.raises(ValueError, match="already registered"):
            register_source(store, COURT, "city")
        submit(store, [listing("c1", "k1")])
    code, out, err = cli("evaluate", "--as-of", "2024-06-01", "--db", registry, "--json")
    assert code == 0, err
    assert json.loads(out)["engine"] == "postgres"  # in the registry, which is PostgreSQL
    code, out, err = cli(
        "check", DEBTOR, "flight", "--at", "2024-06-01", "--db", registry, "--json"
    )
    assert code == 0, err
    assert json.loads(out)["decision"] == "deny"
    code, out, err = cli("explain", DEBTOR, "--at", "2024-06-01", "--db", registry, "--json")
    assert code == 0, err
    # Compiled replay plans are DuckDB SQL: on PostgreSQL the command says so and
    # fails, and replays (explain above) go through the engine.
    code, out, err = cli("packs", "compile", "--db", registry)
    assert code != 0 and "PostgreSQL" in err, (code, out, err)


def test_an_evaluation_never_misses_a_batch_in_flight(registry: str) -> None:
    """Importer A stamps and numbers its batch, then is slow to commit; importer B
    commits a later-numbered batch meanwhile. An evaluation started then must not fix
    its knowledge (known_at, the newest batch covered) around A's batch: that run
    would not see A's listing, and the next incremental run (batches after the
    newest covered) would not either. It waits for A, and both listings count."""
    other = make_person_id(date(1985, 7, 1), 47)
    with Store(registry) as store:
        submit(store, [listing("r0", "k0")])
        first = evaluate_registry(store)
        assert first.mode == "full"
    paused, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow_commit() -> None:
        if threading.current_thread().name == "importer-a":
            paused.set()
            assert release.wait(60), "never released"

    def run(name: str, work: Callable[[Store], object]) -> threading.Thread:
        def body() -> None:
            try:
                with Store(registry) as mine:
                    work(mine)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        thread = threading.Thread(target=body, name=name, daemon=True)
        thread.start()
        return thread

    a_record = {**listing("ra", "ka"), "subject_id": other}
    commit._before_commit = slow_commit
    try:
        importer_a = run("importer-a", lambda s: submit(s, [a_record]))
        assert paused.wait(60), errors
        importer_b = run("importer-b", lambda s: submit(s, [listing("rb", "kb")]))
        importer_b.join(60)
        assert not importer_b.is_alive(), "an importer waited for another one"
        evaluation = run("evaluation", evaluate_registry)
        with psycopg.connect(registry, autocommit=True) as watch:
            for _ in range(600):
                waiting = watch.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).fetchone()
                if (waiting and waiting[0]) or not evaluation.is_alive():
                    break
                time.sleep(0.1)
        assert evaluation.is_alive(), "the evaluation did not wait for the batch in flight"
        release.set()
        importer_a.join(60)
        evaluation.join(120)
        assert not errors, errors
    finally:
        commit._before_commit = None
        release.set()
    with Store(registry) as store:
        run_row = store.sql.execute(
            "SELECT last_batch FROM eval_runs ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
        batches = store.sql.execute("SELECT max(batch_id) FROM batches").fetchone()
        assert run_row == batches, "the run does not cover every committed batch"
        listed = {r[0] for r in store.sql.execute("SELECT subject_id FROM list_entries").fetchall()}
        assert listed == {DEBTOR, other}
        again = evaluate_registry(store)
        assert again.mode == "incremental" and again.subjects_recomputed == 0
