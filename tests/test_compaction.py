"""`xinyong compact` (ledger/compaction.py): the ledger rewritten in subject order so
that a replay finds one subject's records without reading the whole ledger. What a
user relies on: the same records, the same answers, the rows of a subject together,
nothing changed when it fails, and a clear refusal where it does not apply."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import make_person_id, pg_database
from test_cli import COURT, listing
from xinyong.access import operations as ops
from xinyong.access.principals import local_operator
from xinyong.audit import audit_path
from xinyong.checks import check
from xinyong.ledger import compaction
from xinyong.ledger.store import RegistryError, Store
from xinyong.timeutil import parse_instant

runner = CliRunner()
DEBTORS = [make_person_id(date(1970 + i % 30, 1 + i % 12, 1 + i % 28), 100 + i) for i in range(40)]


def _fulfilled(record_id: str, subject: str, occurred: str, case: str) -> dict[str, Any]:
    return {
        "record_id": record_id,
        "subject_id": subject,
        "type": "court.obligation_fulfilled",
        "occurred_at": occurred,
        "source": COURT,
        "attributes": {"case_no": case},
    }


def _cli(db: str, *args: str) -> tuple[int, str]:
    from xinyong.cli import _register, app

    _register()
    result = runner.invoke(app, [*args, "--db", db])
    return result.exit_code, result.stdout


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Forty debtors, each listed in one batch and (half of them) performing in a
    later one: the ledger's rows interleave the subjects, as imports leave them. Not
    evaluated: every answer below replays the subject's records."""
    tmp_path = tmp_path_factory.mktemp("compaction")
    db = tmp_path / "reg.duckdb"
    assert _cli(str(db), "init", "--json")[0] == 0
    assert _cli(str(db), "sources", "add", COURT, "--kind", "court")[0] == 0
    batches = [
        [
            listing(f"l{i}", s, "2020-03-01", f"(2020)鲁1082执{i}号", "able_but_refuses")
            for i, s in enumerate(DEBTORS)
        ],
        [
            _fulfilled(f"f{i}", s, "2021-07-01", f"(2020)鲁1082执{i}号")
            for i, s in enumerate(DEBTORS)
            if i % 2 == 0
        ],
        [
            listing(f"m{i}", s, "2022-01-10", f"(2022)鲁1082执{i}号", "able_but_refuses")
            for i, s in enumerate(DEBTORS)
        ],
    ]
    for n, batch in enumerate(batches):
        path = tmp_path / f"batch{n}.jsonl"
        path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in batch) + "\n")
        code, out = _cli(str(db), "import", str(path), "--json")
        assert code == 0, out
    return db


@pytest.fixture
def registry(imported: Path, tmp_path: Path) -> Path:
    """A copy of ``imported`` (the registry file and the files beside it)."""
    for path in imported.parent.glob(f"{imported.name}*"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path / imported.name


def _ledger(db: Path) -> list[tuple[Any, ...]]:
    with Store(db, read_only=True) as store:
        return store.sql.execute("SELECT * FROM records ORDER BY record_id").fetchall()


def _physical_subjects(db: Path) -> list[str]:
    with Store(db, read_only=True) as store:
        rows = store.sql.execute("SELECT subject_id FROM records ORDER BY rowid").fetchall()
    return [r[0] for r in rows]


def _answers(db: Path) -> list[Any]:
    """Replayed checks of a few debtors, at two instants, with knowledge before the
    last batch and with all of it: each reads the subject's records from the ledger
    (through the judicial pack's compiled plan; explain would compile every pack's)."""
    out: list[Any] = []
    with Store(db, read_only=True) as store:
        last = store.sql.execute("SELECT max(recorded_at) FROM batches").fetchone()
        known = last[0] - timedelta(microseconds=1)  # before the last batch
        for subject in DEBTORS[:4]:
            for at in ("2021-01-01", "2022-06-01"):
                for knowing in (known, None):
                    answer = check(store, subject, "flight", at=parse_instant(at), known_at=knowing)
                    out.append(answer.model_dump())
    return out


def test_compaction_puts_a_subjects_records_together_and_changes_nothing(
    registry: Path,
) -> None:
    ledger, answers = _ledger(registry), _answers(registry)
    order = _physical_subjects(registry)
    assert order != sorted(order)  # as imported: the subjects interleave

    code, out = _cli(str(registry), "compact", "--json")
    assert code == 0, out
    body = json.loads(out)
    assert body["records"] == len(ledger) == 40 + 20 + 40
    assert set(body) == {
        "records", "row_groups_before", "row_groups_after", "seconds", "rewritten"
    }  # fmt: skip
    assert body["rewritten"] is True
    # Nothing imported since: the ledger is still in order, nothing is rewritten.
    again = json.loads(_cli(str(registry), "compact", "--json")[1])
    assert again["rewritten"] is False and again["records"] == len(ledger)

    assert _physical_subjects(registry) == sorted(order)
    assert _ledger(registry) == ledger
    # SPC Fa Shi [2017] No. 7: listed from 2020-03-01 (able but refuses), so denied a
    # flight in 2021: the same answers, from the same records, after compaction.
    assert _answers(registry) == answers
    # Debtor 0 performed on 2021-07-01 (Art. 10(1): the listing ends) and was listed
    # again on 2022-01-10, which the last batch brought.
    assert [a["decision"] for a in answers[:4]] == ["deny", "deny", "allow", "deny"]
    lines = audit_path(registry).read_text(encoding="utf-8").splitlines()
    entries = [e for e in map(json.loads, lines) if e["action"] == "compact"]
    assert len(entries) == 2  # both runs are audited
    assert all(e["outcome"] == "done" and e["principal"] == "local-operator" for e in entries)


def test_a_compaction_that_fails_leaves_the_ledger_as_it_was(
    registry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger, order = _ledger(registry), _physical_subjects(registry)
    # The check before COMMIT finds a difference (here: a fingerprint that counts
    # where the rows lie, which the rewrite changes) after the rows were rewritten.
    monkeypatch.setattr(
        compaction, "_FINGERPRINT", "SELECT count(*), sum(hash(record_id, rowid)) FROM records"
    )
    with pytest.raises(RegistryError, match="would change the ledger"):
        ops.compact(ops.Registry(registry), local_operator())
    assert _ledger(registry) == ledger
    assert _physical_subjects(registry) == order


def test_compaction_refuses_where_it_does_not_apply(registry: Path) -> None:
    with Store(registry, read_only=True) as store, pytest.raises(RegistryError, match="read-only"):
        compaction.compact(store)
    with pg_database() as url:
        assert _cli(url, "init", "--json")[0] == 0
        from xinyong.cli import app

        refused = runner.invoke(app, ["compact", "--db", url])
    assert refused.exit_code == 1
    assert "PostgreSQL" in refused.output and "subject_id" in refused.output
