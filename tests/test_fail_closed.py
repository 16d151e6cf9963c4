"""Issue 6: a wrong registry path never answers `allow`, every failure a user can
cause is one `error:` line with exit 1 (refused input) or 2 (usage), and readers
never fail each other. Real processes where locks are involved."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import XINYONG, make_person_id
from xinyong.cli import _register, app
from xinyong.ledger.store import SCHEMA_VERSION, Store

_register()
runner = CliRunner()

DEBTOR = make_person_id(date(1980, 2, 29), 31)
COURT = "court:371082-rongcheng"
CITY = "city:rongcheng"


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def assert_one_error_line(code: int, err: str, expected_code: int, *words: str) -> None:
    assert code == expected_code, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], err


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with packs and one listed debtor, evaluated."""
    tmp = tmp_path_factory.mktemp("closed")
    db = tmp / "r.duckdb"
    assert cli("init", "--db", str(db))[0] == 0
    assert cli("sources", "add", COURT, "--kind", "court", "--db", str(db))[0] == 0
    assert cli("sources", "add", CITY, "--kind", "city", "--db", str(db))[0] == 0
    path = tmp / "records.jsonl"
    listed = {
        "record_id": "c1",
        "subject_id": DEBTOR,
        "type": "court.listing_decision",
        "occurred_at": "2024-05-01",
        "source": COURT,
        "attributes": {"case_no": "(2024)鲁1082执200号", "ground": "able_but_refuses"},
    }
    # Rongcheng keeps it, but scores it only with consent (Rong Zheng Fa [2021] No. 3)
    ticket = {
        "record_id": "t1",
        "subject_id": DEBTOR,
        "type": "traffic.red_light",
        "occurred_at": "2025-10-01",
        "source": CITY,
        "attributes": {"ticket_no": "T1"},
    }
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in (listed, ticket)))
    assert cli("import", str(path), "--db", str(db))[0] == 0
    assert cli("evaluate", "--as-of", "2026-06-01", "--db", str(db))[0] == 0
    return db


def _not_registries(tmp: Path) -> dict[str, Path]:
    csv = tmp / "typo.csv"
    csv.write_text("record_id,subject_id\nr1,x\n")
    jsonl = tmp / "records.jsonl"
    jsonl.write_text('{"record_id": "r1"}\n')
    parquet = tmp / "records.parquet"
    pq.write_table(pa.table({"record_id": ["r1"]}), parquet)
    empty_duckdb = tmp / "other.duckdb"
    import duckdb

    duckdb.connect(str(empty_duckdb)).close()
    return {"csv": csv, "jsonl": jsonl, "parquet": parquet, "empty duckdb": empty_duckdb}


def test_nothing_but_a_registry_is_used_as_one(tmp_path: Path) -> None:
    """Issue 6 item 1: `--db typo.csv` answered `allow` for everyone."""
    paths = _not_registries(tmp_path)
    paths |= {
        "missing file": tmp_path / "nothere.duckdb",
        "directory": tmp_path,
        "missing folder": tmp_path / "no" / "r.duckdb",
    }
    for label, path in paths.items():
        before = path.read_bytes() if path.is_file() else None
        for args in (
            ("check", DEBTOR, "flight"),
            ("score", DEBTOR, "--system", "rongcheng"),
            ("sources", "add", COURT, "--kind", "court"),
            ("sources", "list"),
            ("packs", "list"),
            ("evaluate",),
        ):
            code, _, err = cli(*args, "--db", str(path))
            assert_one_error_line(code, err, 1)
            assert "allow" not in err, label
        if before is not None:
            code, _, err = cli("init", "--db", str(path))
            assert_one_error_line(code, err, 1, str(path))
            assert path.read_bytes() == before, f"{label} was written to"
        assert not (tmp_path / "no").exists()


def test_init_takes_a_missing_or_empty_file_and_a_registry_again(tmp_path: Path) -> None:
    empty = tmp_path / "new.duckdb"
    empty.touch()
    assert cli("init", "--db", str(empty))[0] == 0
    code, out, _ = cli("init", "--db", str(empty), "--json")
    assert code == 0 and len(json.loads(out)["packs"]) == 5  # with admin_penalty (issue 9)


def test_a_registry_without_packs_answers_nothing(tmp_path: Path) -> None:
    db = tmp_path / "bare.duckdb"
    Store(db).close()  # a registry, but no packs installed
    for args in (("check", DEBTOR, "flight"), ("score", DEBTOR, "--system", "rongcheng")):
        code, _, err = cli(*args, "--db", str(db))
        assert_one_error_line(code, err, 1, "no rule packs")


def test_older_registries_need_an_explicit_migration(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    assert cli("init", "--db", str(db))[0] == 0
    with Store(db) as store:  # what a registry of schema version 1 looked like
        store.sql.execute("DELETE FROM meta WHERE key = 'format'")
        store.sql.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    code, _, err = cli("packs", "list", "--db", str(db))
    assert_one_error_line(code, err, 1, "schema version 1", "xinyong migrate")
    code, out, _ = cli("migrate", "--db", str(db), "--json")
    assert code == 0 and json.loads(out)["steps"][0]["from"] == 1
    assert json.loads(out)["schema_version"] == SCHEMA_VERSION
    code, out, _ = cli("packs", "list", "--db", str(db), "--json")
    assert code == 0 and len(json.loads(out)) == 5
    code, out, _ = cli("migrate", "--db", str(db))
    assert code == 0 and "already at schema version" in out
    with Store(db) as store:  # a registry from a newer xinyong
        store.sql.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    code, _, err = cli("packs", "list", "--db", str(db))
    assert_one_error_line(code, err, 1, "newer than this xinyong")


def test_former_tracebacks_are_one_line(registry: Path, tmp_path: Path) -> None:
    """Issue 6 item 3, each case that ended in a traceback."""
    db = ("--db", str(registry))
    cases: list[tuple[tuple[str, ...], int, str]] = [
        (("check", DEBTOR, "flight", "--at", "0001-01-01", *db), 2, "--at"),
        (("check", DEBTOR, "flight", "--at", "9999-12-31T23:59:59-12:00", *db), 2, "--at"),
        (("evaluate", "--as-of", "0001-01-01", *db), 2, "--as-of"),
        (("packs", "install", str(tmp_path), *db), 1, "is a directory"),
        (("check", DEBTOR, "flight", "--known-at", "2199-01-01", *db), 2, "future"),
    ]
    dup = tmp_path / "dup.csv"
    dup.write_text("record_id,record_id,subject_id,type,occurred_at,source,attributes\n")
    cases.append((("import", str(dup), *db), 1, "appears twice"))
    deep = tmp_path / "deep.yaml"
    deep.write_text(
        "meta: {system: deep, version: '1', effective_from: 2020-01-01, title: t,"
        " authority: a, legal_basis: b}\n"
        "scope: {record_types: [traffic.red_light], source_kinds: [city]}\n"
        "score:\n  rules:\n    - {id: r, type: traffic.red_light, points: -1,\n"
        f'       when: "{"not " * 5000}true"}}\n'
    )
    cases.append((("packs", "install", str(deep), *db), 1, "nested too deeply"))
    cases.append((("import", str(tmp_path / "none.jsonl"), *db), 1, "none.jsonl"))
    cases.append((("import", str(dup), "--batch-rows", "2", "--strict", *db), 2, "--batch-rows"))
    for args, code, word in cases:
        got, _, err = cli(*args)
        assert_one_error_line(got, err, code, word)


def test_rejects_path_refused_before_the_commit(registry: Path, tmp_path: Path) -> None:
    """Issue 6 item 4: the valid rows were committed, then the command failed."""
    path = tmp_path / "new.jsonl"
    record = {
        "record_id": "n1",
        "subject_id": DEBTOR,
        "type": "court.obligation_fulfilled",
        "occurred_at": "2025-05-01",
        "source": COURT,
        "attributes": {"case_no": "(2024)鲁1082执200号"},
    }
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n")
    for where in (tmp_path, tmp_path / "missing" / "r.jsonl"):
        code, _, err = cli("import", str(path), "--rejects", str(where), "--db", str(registry))
        assert_one_error_line(code, err, 1, str(where))
    with Store(registry, read_only=True) as store:
        row = store.sql.execute("SELECT count(*) FROM records WHERE record_id = 'n1'").fetchone()
        assert row == (0,)


def test_messages_say_what_happened(registry: Path) -> None:
    db = ("--db", str(registry))
    shipped = Path(__file__).parents[1] / "src/xinyong/packs/shipped/judicial.yaml"
    code, out, _ = cli("packs", "install", str(shipped), *db)
    assert code == 0 and out.startswith("already installed")
    code, out, _ = cli("score", DEBTOR, "--system", "judicial", *db)
    assert code == 0 and "computes no score" in out and "consent" not in out
    code, out, _ = cli("explain", DEBTOR, "--system", "rongcheng", "--at", "2026-01-01", *db)
    assert code == 0 and "scores only with the subject's consent" in out
    assert "kept records that would count with consent (1)" in out
    assert "2025-10-01 t1 traffic.red_light" in out


def test_help_is_plain_and_names_iso_8601() -> None:
    for command in (["import"], ["check"], ["model"], ["packs", "list"], []):
        code, out, _ = cli(*command, "--help")
        assert code == 0 and "<bool>" not in out
    assert "ISO 8601" in cli("check", "--help")[1]


_HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from xinyong.ledger.store import Store
    db, marker, mode = sys.argv[1:4]
    with Store(db, read_only=(mode == "read")):
        Path(marker).write_text("open")
        time.sleep(60)
""")


def _hold(db: Path, tmp: Path, mode: str) -> subprocess.Popen[bytes]:
    marker = tmp / f"marker-{mode}"
    marker.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(db), str(marker), mode], env=env)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    return proc


def test_readers_share_the_file_and_wait_briefly_for_writers(
    registry: Path, tmp_path: Path
) -> None:
    """Issue 6 item 2: two checks 0.3 s apart failed each other. Real processes: a
    reader holds the file while two `check` and a `packs list` run at once; then a
    writer holds it and a reader ends in one line after its bounded wait."""
    env = {**os.environ, "XINYONG_DB": str(registry), "XINYONG_BUSY_TIMEOUT": "20"}
    holder = _hold(registry, tmp_path, "read")
    try:
        commands = [
            [XINYONG, "check", DEBTOR, "flight", "--at", "2026-06-01", "--json"],
            [XINYONG, "packs", "list", "--json"],
        ]
        procs = [
            subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for c in commands
        ]
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        holder.kill()
        holder.wait()
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err.decode()
    assert json.loads(outs[0][0])["decision"] == "deny"

    writer = _hold(registry, tmp_path, "write")
    try:  # the lock is the other process's: in-process is as real here
        code, _, err = cli(
            "sources", "list", env={"XINYONG_DB": str(registry), "XINYONG_BUSY_TIMEOUT": "0.5"}
        )
    finally:
        writer.kill()
        writer.wait()
    assert_one_error_line(code, err, 1, "in use by another process")


def test_readme_says_which_commands_take_db_and_every_check_key(registry: Path) -> None:
    """Issue 6 item 9: the README said every command takes --db; `effect` was missing."""
    readme = (Path(__file__).parents[1] / "README.md").read_text("utf-8")
    section = readme[readme.index("## Command line") : readme.index("A short session")]
    no_db = section[section.index("take `--db PATH`") : section.index("take none")]
    for command in (["packs", "lint"], ["model", "evaluate"], ["model", "train"]):
        assert "--db" not in cli(*command, "--help")[1]
    assert "`packs lint`" in no_db and "`model`" in no_db
    for command in (["check"], ["migrate"], ["packs", "show"], ["sources", "list"]):
        assert "--db" in cli(*command, "--help")[1]
    code, out, _ = cli("check", DEBTOR, "flight", "--db", str(registry), "--json")
    answer = json.loads(out)
    row = next(line for line in section.splitlines() if line.startswith("| `xinyong check"))
    for key in [*answer, *answer["reasons"][0]]:
        assert f'"{key}"' in row, key


def test_model_messages_name_things_once_and_no_missing_option(tmp_path: Path) -> None:
    """Issue 6 item 7: `model evaluate` suggested --exclude, which it lacks; `model
    merge` said "comm.yaml: comm.yaml: invalid pack"."""
    model = tmp_path / "m.yaml"
    model.write_text(
        "scorecard:\n  offset: 700\n  features:\n  - feature: arrears\n    bins:\n"
        "    - {upper: 1, points: 0}\n    - {lower: 1, points: -50}\n"
        "target: {column: bad, bad: '1'}\n"
    )
    table = tmp_path / "t.csv"
    table.write_text("arrears,bad\n1,0\nmany,1\n0,0\n")
    code, _, err = cli("model", "evaluate", str(model), str(table))
    assert_one_error_line(code, err, 1, "'many'", "the model needs this column")
    assert "--exclude" not in err
    pack = tmp_path / "comm.yaml"
    pack.write_text("meta: {system: x}\n")
    code, _, err = cli("model", "merge", str(model), str(pack))
    assert code == 1 and err.startswith("error: ") and err.count("comm.yaml") == 1, err


def test_explanation_text_shows_everything_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 6 item 7: the text view crashed on a scorecard system (points null), cut
    columns ("utility.e…"), wrapped legal bases one word per line, printed "term by -"
    and reasons without points or direction."""
    import io
    import re

    from rich.console import Console

    from xinyong.checks import Explanation
    from xinyong.cli import render

    basis = "SPC Provisions on Publishing the List of Dishonest Judgment Debtors, Art. 1(1)"
    explanation = Explanation.model_validate(
        {
            "subject_id": DEBTOR,
            "subject_kind": "person",
            "age": 46,
            "flags": [],
            "at": "2026-06-01T00:00:00+08:00",
            "known_at": None,
            "systems": [
                {
                    "system": "commercial",
                    "version": "2025.1",
                    "title": "Commercial",
                    "score": 779.0,
                    "grade": "excellent",
                    "contributions": [
                        {
                            "record_id": "utility-electricity-arrears-0001",
                            "type": "utility.electricity_arrears",
                            "rule_id": "arrears_count_2y",
                            "occurred_at": "2025-03-01T00:00:00+08:00",
                            "points": None,  # a scorecard feature: points per feature
                            "legal_basis": basis,
                        }
                    ],
                    "reasons": [
                        {
                            "rank": 1,
                            "rule_id": "loans_closed_5y",
                            "dimension": "capacity",
                            "points_lost": 71.0,
                            "description": "Loans repaid and closed in the last 5 years",
                        },
                        {"rank": 2, "rule_id": "utility_theft", "points_lost": 5.0,
                         "dimension": None, "description": "utility_theft"},
                    ],
                    "list_entries": [
                        {
                            "list_id": "dishonest_debtors",
                            "key": "(2024)鲁1082执100号",
                            "active": False,
                            "start_at": "2024-03-31T00:00:00+08:00",
                            "end_at": "2026-03-31T00:00:00+08:00",
                            "end_reason": "term",
                            "ending_record_id": None,
                            "entry_record_id": "c1",
                            "legal_basis": basis,
                        }
                    ],
                }
            ],
        }
    )  # fmt: skip
    screen = io.StringIO()
    monkeypatch.setattr(render, "console", Console(file=screen, width=60, soft_wrap=True))
    render.print_explanation(explanation, {})
    out = screen.getvalue()
    flat = " ".join(re.sub("[│├└─]", " ", out).split())
    assert "…" not in out and "utility-electricity-arrears-0001" in out
    assert "utility.electricity_arrears" in out
    assert "term by -" not in flat and "ends: term" in flat
    assert "-71 points" in flat and "(capacity) Loans repaid" in flat
    assert "utility_theft () utility_theft" not in flat and "-5 points" in flat
    words = [line for line in out.splitlines() if line.strip(" │├└─") in basis.split()]
    assert not words, "the legal basis was wrapped one word per line"
