"""The command line as outside tools drive it: commands, flags, JSON shapes and
exit codes (0 success, 1 refused input, 2 usage error)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import BACKENDS, make_person_id, registry_at
from xinyong.cli import _register, app

_register()
runner = CliRunner()

DEBTOR = make_person_id(date(1980, 2, 29), 31)
STRANGER = make_person_id(date(1985, 7, 1), 77)
MINOR = make_person_id(date(2010, 3, 3), 12)
COURT = "court:371082-rongcheng"


def run(db: Path | str, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--db", str(db)])
    return result.exit_code, result.stdout


def listing(
    record_id: str, subject: str, occurred: str, case: str, ground: str, **extra: int
) -> dict:
    return {
        "record_id": record_id,
        "subject_id": subject,
        "type": "court.listing_decision",
        "occurred_at": occurred,
        "source": COURT,
        "attributes": {"case_no": case, "ground": ground, **extra},
    }


@pytest.fixture(scope="module", params=BACKENDS)
def registry(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A registry with one debtor listed on two cases, one of them performed (a DuckDB
    file, and a PostgreSQL database: the same answers)."""
    tmp = tmp_path_factory.mktemp("cli")
    with registry_at(request.param, tmp) as db:
        yield _fill(db, tmp)


def _fill(db: str, tmp: Path) -> str:
    assert run(db, "init", "--json")[0] == 0
    assert run(db, "sources", "add", COURT, "--kind", "court")[0] == 0
    records = [
        # Art. 1(3) evasion, 1 year extension, 30 days' grace (day 30, Sunday 03-31, moves
        # to Monday 04-01, Civil Procedure Law Art. 85): 2024-04-02 .. 2027-04-02
        listing(
            "c1",
            DEBTOR,
            "2024-03-01",
            "(2024)鲁1082执100号",
            "evades_enforcement",
            extension_years=1,
            grace_days=30,
        ),
        # Art. 1(1): open-ended until performed (Art. 10(1))
        listing("c2", DEBTOR, "2024-05-01", "(2024)鲁1082执200号", "able_but_refuses"),
        {
            "record_id": "c3",
            "subject_id": DEBTOR,
            "type": "court.obligation_fulfilled",
            "occurred_at": "2025-05-01",
            "source": COURT,
            "attributes": {"case_no": "(2024)鲁1082执200号"},
        },
        # Art. 4: minors are never listed
        listing("c4", MINOR, "2025-01-10", "(2025)鲁1082执9号", "able_but_refuses"),
    ]
    path = tmp / "records.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n")
    code, out = run(db, "import", str(path), "--json")
    assert code == 0, out
    assert json.loads(out) == {"accepted": 4, "duplicates": 0, "rejected": 0, "rejects_file": None}
    code, out = run(db, "evaluate", "--as-of", "2026-06-01", "--json")
    assert code == 0, out
    return db


def test_import_reports_duplicates_and_rejects(registry: str, tmp_path: Path) -> None:
    path = tmp_path / "again.jsonl"
    path.write_text(
        json.dumps(
            listing("c2", DEBTOR, "2024-05-01", "(2024)鲁1082执200号", "able_but_refuses"),
            ensure_ascii=False,
        )
        + "\n"
        + json.dumps(listing("x1", "110105194912310021", "2024-05-01", "k", "able_but_refuses"))
        + "\n"
    )
    code, out = run(registry, "import", str(path), "--json")
    body = json.loads(out)
    assert code == 1
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (0, 1, 1)
    reject = json.loads(Path(body["rejects_file"]).read_text().splitlines()[0])
    assert reject["record_id"] == "x1" and reject["field"] == "subject_id"


def test_strict_import_writes_nothing(registry: str, tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    good = listing("s1", STRANGER, "2024-05-01", "k1", "able_but_refuses")
    bad = listing("s2", STRANGER, "2099-01-01", "k2", "able_but_refuses")  # in the future
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    code, out = run(registry, "import", str(path), "--strict", "--json")
    assert code == 1 and json.loads(out)["accepted"] == 0
    code, out = run(registry, "check", STRANGER, "flight", "--at", "2025-01-01", "--json")
    assert json.loads(out)["decision"] == "allow"


def test_check_answers_with_every_reason(registry: str) -> None:
    code, out = run(registry, "check", DEBTOR, "flight", "--at", "2024-06-01", "--json")
    assert code == 0
    answer = json.loads(out)
    assert set(answer) == {"subject_id", "service", "at", "decision", "reasons"}
    assert answer["decision"] == "deny" and answer["at"] == "2024-06-01T00:00:00+08:00"
    by_since = sorted(answer["reasons"], key=lambda r: r["since"])
    assert [r["since"][:10] for r in by_since] == ["2024-04-02", "2024-05-01"]
    assert by_since[0]["until"] == "2027-04-02T00:00:00+08:00"  # 2 years + 1 extension
    # open-ended until performed; the registry knows it was performed on 2025-05-01,
    # and a reason's until is the end as known (issue 8), also at an earlier instant
    assert by_since[1]["until"] == "2025-05-01T00:00:00+08:00"
    for reason in by_since:
        assert reason["system"] == "judicial" and reason["list"] == "dishonest_debtors"
        assert reason["legal_basis"] and reason["remedy"] and reason["rule"]


def test_check_after_performance_and_after_term(registry: str) -> None:
    code, out = run(registry, "check", DEBTOR, "rail.high_speed", "--at", "2026-06-01", "--json")
    answer = json.loads(out)
    assert answer["decision"] == "deny" and len(answer["reasons"]) == 1  # case 200 performed
    code, out = run(registry, "check", DEBTOR, "rail.high_speed", "--at", "2027-04-02", "--json")
    assert json.loads(out) == {**json.loads(out), "decision": "allow", "reasons": []}


def test_minor_is_never_listed_and_stranger_is_allowed(registry: str) -> None:
    for subject in (MINOR, STRANGER):
        code, out = run(registry, "check", subject, "flight", "--at", "2026-01-01", "--json")
        assert code == 0 and json.loads(out)["decision"] == "allow"


def test_known_at_replays_what_was_known(registry: str) -> None:
    code, out = run(
        registry,
        "check",
        DEBTOR,
        "flight",
        "--at",
        "2024-06-01",
        "--known-at",
        "2024-01-01",
        "--json",
    )
    assert code == 0 and json.loads(out)["decision"] == "allow"


def test_score_is_null_without_consent(registry: str) -> None:
    code, out = run(
        registry, "score", DEBTOR, "--system", "rongcheng", "--at", "2026-01-01", "--json"
    )
    assert code == 0
    assert json.loads(out) == {
        "subject_id": DEBTOR,
        "system": "rongcheng",
        "score": None,
        "grade": None,
    }


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("check", "110105194912310021", "flight"), 1, "110105194912310021"),
        (("check", DEBTOR, "spaceflight"), 1, "unknown service"),
        (("score", DEBTOR, "--system", "astrology"), 1, "unknown system"),
        (("check", DEBTOR, "flight", "--at", "yesterday"), 2, "--at"),
        (("explain",), 2, ""),
    ],
)
def test_bad_input_exits_non_zero_with_a_message(
    registry: str, args: tuple[str, ...], code: int, message: str
) -> None:
    result = runner.invoke(app, [*args, "--db", str(registry)])
    assert result.exit_code == code
    assert message in (result.stderr or "") + (result.stdout or "")


def test_packs_list_show_and_lint(registry: str, tmp_path: Path) -> None:
    code, out = run(registry, "packs", "list", "--json")
    assert {p["system"] for p in json.loads(out)} == {
        "judicial",
        "rongcheng",
        "financial",
        "commercial",
        "admin_penalty",  # issue 9: publication of administrative penalties, credit repair
    }
    code, out = run(registry, "packs", "show", "judicial", "--json")
    assert code == 0 and json.loads(out)["meta"]["system"] == "judicial"
    bad = tmp_path / "family.yaml"
    bad.write_text(
        "meta: {system: x, version: '1', effective_from: 2020-01-01, title: t, authority: a,"
        " legal_basis: b}\n"
        "scope: {record_types: [court.listing_decision], source_kinds: [court]}\n"
        "relations: [{id: spouse, legal_basis: none}]\n"
    )
    result = runner.invoke(app, ["packs", "lint", str(bad), "--json"])
    assert result.exit_code == 1
    findings = json.loads(result.stdout)["findings"]
    assert any(f["level"] == "error" and "spouse" in f["rule_id"] + f["message"] for f in findings)


def test_each_command_is_found_in_the_module_the_dispatch_table_names() -> None:
    """`xinyong X` imports only X's module (cli.COMMANDS): a command missing from the
    table, or named with the wrong module, would not be found by the real entry point."""
    import inspect

    import typer.main

    from xinyong.cli import COMMANDS

    group = typer.main.get_command(app)
    found: dict[str, set[str]] = {}
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        subs = getattr(command, "commands", None)
        callbacks = [c.callback for c in subs.values()] if subs else [command.callback]
        found[name] = {inspect.getmodule(cb).__name__.rsplit(".", 1)[1] for cb in callbacks}
    assert set(found) == set(COMMANDS)
    for name, modules in found.items():
        # model's validation commands live in model_validation, imported by model
        assert COMMANDS[name] in modules, (name, modules)


def test_the_entry_point_runs_a_command_from_a_fresh_process(tmp_path: Path) -> None:
    """The installed `xinyong` script, as a user runs it: one module's commands are
    loaded, the answer is the same, and an unknown command still fails as usage."""
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("xinyong")
    db = tmp_path / "fresh.duckdb"
    done = subprocess.run([exe, "init", "--db", db], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [exe, "check", STRANGER, "flight", "--db", db, "--json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["decision"] == "allow"
    done = subprocess.run([exe, "no-such-command"], capture_output=True, text=True)
    assert done.returncode == 2 and "no-such-command" in done.stderr
