"""The consequence index: decisions, precedence and intervals, answered from memory.

The rows are written straight into the materialized `consequences` table, so
these tests pin the check contract (CATALOG.md "Check answer") independently of
the engine that normally fills it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from xinyong.checks import ConsequenceIndex
from xinyong.checks.index import COLUMNS, DECISION_ORDER, micros
from xinyong.ledger.store import Store

SUBJECT = "11010519491231002X"
ORG_SUBJECT = "91350100M000100Y43"


def _row(service: str, effect: str, since: datetime, until: datetime | None, **kw: str) -> tuple:
    return (
        kw.get("subject", SUBJECT),
        service,
        effect,
        kw.get("system", "judicial"),
        kw.get("basis_kind", "list"),
        kw.get("basis_id", "dishonest_debtors"),
        kw.get("rule", "restrict-flight"),
        "Fa Shi [2017] No. 7, Art. 8",
        since,
        until,
        kw.get("remedy", "perform the obligation"),
        kw.get("via_relation"),
        kw.get("via_subject"),
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "r.duckdb") as s:
        yield s


def _load(store: Store, rows: list[tuple]) -> ConsequenceIndex:
    if rows:
        store.sql.executemany(
            f"INSERT INTO consequences ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return ConsequenceIndex.load(store)


def test_active_interval_denies_and_ends(store: Store) -> None:
    index = _load(store, [_row("flight", "deny", datetime(2020, 1, 1), datetime(2022, 1, 1))])
    assert index.decide(SUBJECT, "flight", micros(datetime(2019, 12, 31))) == "allow"
    assert index.decide(SUBJECT, "flight", micros(datetime(2020, 1, 1))) == "deny"
    # the end instant is exclusive: the entry is over at `until`
    assert index.decide(SUBJECT, "flight", micros(datetime(2022, 1, 1))) == "allow"
    assert index.decide(SUBJECT, "rail.high_speed", micros(datetime(2021, 1, 1))) == "allow"


def test_unknown_subject_is_allowed(store: Store) -> None:
    index = _load(store, [])
    assert index.decide("110105194912310029", "flight", micros(datetime(2021, 1, 1))) == "allow"
    answer = index.answer("110105194912310029", "flight", datetime(2021, 1, 1))
    assert answer.decision == "allow" and answer.reasons == []


def test_restriction_outranks_benefit_and_lists_every_reason(store: Store) -> None:
    index = _load(
        store,
        [
            _row(
                "hotel.deposit_free",
                "deposit_free",
                datetime(2020, 1, 1),
                None,
                system="commercial",
                basis_kind="grade",
                basis_id="excellent",
                rule="perk-hotel",
            ),
            _row("hotel.deposit_free", "deny", datetime(2021, 1, 1), None, rule="restrict-hotel"),
        ],
    )
    answer = index.answer(SUBJECT, "hotel.deposit_free", datetime(2021, 6, 1))
    assert answer.decision == "deny"
    assert [r.effect for r in answer.reasons] == ["deny", "deposit_free"]
    public = answer.public()
    assert (
        public["reasons"][0]["list"] == "dishonest_debtors" and "grade" not in public["reasons"][0]
    )
    assert public["reasons"][1]["grade"] == "excellent" and "list" not in public["reasons"][1]
    assert public["reasons"][0]["until"] is None  # open-ended
    assert set(public) == {"subject_id", "service", "at", "decision", "reasons"}
    assert public["at"] == "2021-06-01T08:00:00+08:00"  # stored UTC, shown in Asia/Shanghai


def test_reason_names_the_relation_it_reached_along(store: Store) -> None:
    index = _load(
        store,
        [
            _row(
                "flight",
                "deny",
                datetime(2020, 1, 1),
                None,
                via_relation="legal_representative",
                via_subject=ORG_SUBJECT,
            ),
        ],
    )
    reason = index.answer(SUBJECT, "flight", datetime(2020, 2, 1)).reasons[0]
    assert reason.via == {"relation": "legal_representative", "subject_id": ORG_SUBJECT}


def test_decision_order_is_the_catalog_vocabulary() -> None:
    from xinyong.catalog import load_catalog

    assert set(DECISION_ORDER) | {"allow"} == set(load_catalog().decisions)
