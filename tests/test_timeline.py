"""Timelines (issue 8): checks and scores at any instant, with the knowledge of the
last evaluation, agree with each other and with a replay at that instant; a
reason's period is the one the registry knows, also at an earlier instant."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import make_person_id
from test_engine_property import instant, ledgers, packs
from test_engine_support import insert, rows
from xinyong.cli import _register, app
from xinyong.engine import evaluate
from xinyong.ledger.store import Store
from xinyong.timeutil import local_midnight

_register()
runner = CliRunner()

THIEF = make_person_id(date(1985, 4, 1), 41)  # nine utility.theft records in June 2026
QUITTER = make_person_id(date(1980, 8, 8), 42)  # consents, then withdraws
DEBTOR = make_person_id(date(1970, 1, 5), 43)  # listed 2019-01-10, performs 2021-07-01
CITY = "city:371082-credit-office"
HEATING = "utility:371082-heating"
COURT = "court:371082-rongcheng"


def run(db: Path, *args: str) -> Any:
    result = runner.invoke(app, [*args, "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _records() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "record_id": "t-consent",
            "subject_id": THIEF,
            "type": "subject.consent_granted",
            "occurred_at": "2025-01-01",
            "source": CITY,
            "attributes": {"system": "rongcheng"},
        },
        {
            "record_id": "q-consent",
            "subject_id": QUITTER,
            "type": "subject.consent_granted",
            "occurred_at": "2025-01-01",
            "source": CITY,
            "attributes": {"system": "rongcheng"},
        },
        {
            "record_id": "q-withdraw",
            "subject_id": QUITTER,
            "type": "subject.consent_withdrawn",
            "occurred_at": "2026-03-01",
            "source": CITY,
            "attributes": {"system": "rongcheng"},
        },
        {
            "record_id": "d-list",
            "subject_id": DEBTOR,
            "type": "court.listing_decision",
            "occurred_at": "2019-01-10",
            "source": COURT,
            "attributes": {"case_no": "(2019)鲁1082执7号", "ground": "able_but_refuses"},
        },
        {
            "record_id": "d-done",
            "subject_id": DEBTOR,
            "type": "court.obligation_fulfilled",
            "occurred_at": "2021-07-01",
            "source": COURT,
            "attributes": {"case_no": "(2019)鲁1082执7号"},
        },
    ]
    for day in range(1, 10):
        out.append(
            {
                "record_id": f"t-theft-{day}",
                "subject_id": THIEF,
                "type": "utility.theft",
                "occurred_at": f"2026-06-{day:02d}",
                "source": HEATING,
                "attributes": {"case_no": f"U-{day}"},
            }
        )
    return out


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("timeline")
    db = tmp / "r.duckdb"
    run(db, "init")
    for source, kind in ((CITY, "city"), (HEATING, "utility"), (COURT, "court")):
        run(db, "sources", "add", source, "--kind", kind)
    path = tmp / "records.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in _records()) + "\n")
    assert run(db, "import", str(path))["accepted"] == 14
    time.sleep(0.01)
    run(db, "evaluate")  # once for the module: every test reads the same timelines
    return db


def _known_before_the_run(db: Path) -> str:
    """An instant after the import and before the evaluation: a replay."""
    from xinyong.ledger.store import Store

    with Store(db, read_only=True) as store:
        row = store.sql.execute("SELECT max(recorded_at), max(known_at) FROM records, eval_runs")
        recorded, known = row.fetchone() or (None, None)
    assert recorded is not None and known is not None and recorded < known
    return (recorded + (known - recorded) / 2).isoformat() + "Z"


def test_an_earlier_instant_gives_the_known_period(registry: Path) -> None:
    """Listed 2019-01-10 (able but refuses), performed 2021-07-01 (Fa Shi [2017] No. 7,
    Art. 10(1)): on 2019-03-01 the debtor was refused a flight, and the entry's period
    as the registry knows it is [2019-01-10, 2021-07-01), by replay and by lookup."""
    known = _known_before_the_run(registry)
    before = run(registry, "check", DEBTOR, "flight", "--at", "2019-03-01", "--known-at", known)
    after = run(registry, "check", DEBTOR, "flight", "--at", "2019-03-01")  # the timeline
    for answer in (before, after):
        assert answer["decision"] == "deny"
        (reason,) = answer["reasons"]
        assert reason["since"].startswith("2019-01-10")
        assert reason["until"].startswith("2021-07-01")
    later = run(registry, "check", DEBTOR, "flight", "--at", "2021-07-01")
    assert later["decision"] == "allow"


def test_grade_consequences_carry_their_periods(registry: Path) -> None:
    """Nine thefts of heat (-60 each, Rongcheng standards) in June 2026: grade D from
    the seventh (580 points) until the third stops counting 2 years later (640, C)."""
    for at, decision, score, grade in (
        ("2026-06-06", "allow", 640, "C"),
        ("2026-06-07", "deny", 580, "D"),
        ("2027-01-01", "deny", 460, "D"),
        ("2028-06-03", "allow", 640, "C"),
        ("2030-01-01", "allow", 1000, "A"),
    ):
        check = run(registry, "check", THIEF, "gov.support", "--at", at)
        got = run(registry, "score", THIEF, "--system", "rongcheng", "--at", at)
        assert (check["decision"], got["score"], got["grade"]) == (decision, score, grade), at
        if decision == "deny":
            (reason,) = check["reasons"]
            assert reason["grade"] == "D"
            assert reason["since"].startswith("2026-06-07")
            assert reason["until"].startswith("2028-06-03")
    # explain gives the grade's consequences with the same period
    why = run(registry, "explain", THIEF, "--system", "rongcheng", "--at", "2027-01-01")
    (system,) = why["systems"]
    assert system["grade"] == "D"
    (gov,) = [c for c in system["consequences"] if c["service"] == "gov.support"]
    assert gov["since"].startswith("2026-06-07") and gov["until"].startswith("2028-06-03")


def test_a_reward_ends_with_the_consent(registry: Path) -> None:
    """Consent withdrawn on 2026-03-01 ends the score and its rewards at once
    (Rong Zheng Fa [2021] No. 3): the reward shows that end."""
    check = run(registry, "check", QUITTER, "transit.discount", "--at", "2025-06-01")
    assert check["decision"] == "discount"
    (reason,) = check["reasons"]
    assert reason["since"].startswith("2025-01-01")
    assert reason["until"].startswith("2026-03-01")
    assert run(registry, "check", QUITTER, "transit.discount", "--at", "2026-03-01")[
        "decision"
    ] == ("allow")
    gone = run(registry, "score", QUITTER, "--system", "rongcheng", "--at", "2026-04-01")
    assert gone["score"] is None


# ---------------------------------------------------------------------------
# property: a lookup in the timeline at any instant = a replay at that instant

EXAMPLES = int(os.environ.get("XINYONG_TIMELINE_EXAMPLES", "4" if os.environ.get("CI") else "15"))


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    with Store(":memory:") as s:
        s.sql.execute("SET threads = 1")
        yield s


def _holds(since: datetime | None, until: datetime | None, at: datetime) -> bool:
    return since is not None and since <= at and (until is None or at < until)


CONSEQUENCE = ("system", "subject_id", "service", "effect", "rule_id", "basis_kind", "basis_id")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("CI") == "true",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(records=ledgers(), p=packs(), data=st.data())
def test_lookup_equals_replay(store: Store, records: list, p: Any, data: Any) -> None:
    store.sql.execute("DELETE FROM records")
    insert(store, records)
    known_at = max([r["recorded_at"] for r in records], default=instant(data.draw))
    known_at = data.draw(st.sampled_from([known_at, instant(data.draw)]))
    line = evaluate(store, [p], known_at=known_at, as_of=known_at, timeline=True)
    assert line.score_timeline is not None
    intervals = rows(line.score_timeline)
    cons = rows(line.consequences)
    # The instants that matter most are the edges of the intervals: test them and
    # the microsecond before, plus one instant anywhere.
    edges = sorted(
        {r["valid_from"] for r in intervals} | {r["valid_to"] for r in intervals if r["valid_to"]}
    )
    tick = timedelta(microseconds=1)
    pool = [instant(data.draw)] + [e for e in edges] + [e - tick for e in edges]
    for at in data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=2, unique=True)):
        if at > known_at or at < local_midnight(p.meta.effective_from):
            # A replay cannot see past its knowledge (the timeline holds anyway); before
            # its effective date the pack is not in force (installed_packs picks none).
            continue
        point = evaluate(store, [p], as_of=at, known_at=known_at)
        want = sorted(
            (r["subject_id"], round(r["score"], 6), r["grade"]) for r in rows(point.scores)
        )
        got = sorted(
            (r["subject_id"], round(r["score"], 6), r["grade"])
            for r in intervals
            if _holds(r["valid_from"], r["valid_to"], at)
        )
        assert got == want, at
        want_c = sorted(
            tuple(r[c] for c in CONSEQUENCE)
            for r in rows(point.consequences)
            if _holds(r["since"], r["until"], at)
        )
        got_c = sorted(
            tuple(r[c] for c in CONSEQUENCE) for r in cons if _holds(r["since"], r["until"], at)
        )
        assert got_c == want_c, at
