"""Property: on small random ledgers and packs, the engine equals the reference."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_engine_support import insert, norm, pack, rec, rows
from xinyong.engine import evaluate
from xinyong.engine.reference import evaluate_reference
from xinyong.ledger.store import Store

PERSONS = {
    "P1": date(1990, 2, 28),
    "P2": date(2002, 6, 15),
    "P3": date(2004, 2, 29),
    "P4": date(1975, 12, 31),
}
ORGS = ["O1", "O2"]
# Each example compiles a fresh Ibis query (~2-3 s CPU), so the default stays small;
# XINYONG_ENGINE_EXAMPLES=100 runs the full property check.
EXAMPLES = int(os.environ.get("XINYONG_ENGINE_EXAMPLES", "25"))
EPOCH = datetime(2017, 12, 31, 16)  # 2018-01-01 00:00 Asia/Shanghai
SOURCES = ["court", "city", "lender", "regulator", "adjudicator"]


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    with Store(":memory:") as s:
        s.sql.execute("SET threads = 1")  # tiny ledgers: thread start-up costs more than it saves
        yield s


def instant(draw: Any) -> datetime:
    # 15:59 and 16:00 UTC straddle midnight in Shanghai: calendar arithmetic must use
    # the local date (issue 7, finding 6).
    hour, minute = draw(st.sampled_from([(0, 0), (5, 0), (15, 59), (16, 0), (16, 0)]))
    return EPOCH + timedelta(days=draw(st.integers(0, 2500)), hours=hour, minutes=minute)


@st.composite
def ledgers(draw: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    n = draw(st.integers(0, 28))
    for i in range(n):
        rid = f"r{i:02d}"
        at = instant(draw)
        late = timedelta(days=draw(st.sampled_from([0, 0, 30, 400])))
        kind = draw(
            st.sampled_from(
                [
                    "red",
                    "od",
                    "cured",
                    "list",
                    "list",
                    "done",
                    "early",
                    "ended",
                    "transfer",
                    "open",
                    "consent",
                    "withdraw",
                    "rep",
                    "revoke",
                ]
            )
        )
        person = draw(st.sampled_from(sorted(PERSONS)))
        anyone = draw(st.sampled_from([*sorted(PERSONS), *ORGS]))
        common: dict[str, Any] = {"record_id": rid, "recorded_at": at + late}
        if draw(st.integers(0, 9)) == 0:
            common["source_kind"] = "utility"  # out of every scope below
        if kind == "red":
            r = rec(
                anyone, "traffic.red_light", at, ticket_no=draw(st.sampled_from("xyz")), **common
            )
        elif kind in ("od", "cured"):
            attrs: dict[str, Any] = {"account_id": draw(st.sampled_from("ab"))}
            if kind == "od":
                attrs |= {
                    "days_past_due": draw(st.integers(1, 120)),
                    "amount_due": float(draw(st.integers(0, 500))),
                }
            ty = "loan.payment_overdue" if kind == "od" else "loan.overdue_cured"
            r = rec(anyone, ty, at, **attrs, **common)
        elif kind == "list":
            r = rec(
                anyone,
                "court.listing_decision",
                at,
                case_no=draw(st.sampled_from(["c1", "c2"])),
                ground=draw(st.sampled_from(["able_but_refuses", "evades_enforcement"])),
                extension_years=draw(st.integers(0, 3)),
                grace_days=draw(st.sampled_from([0, 0, 30, 92])),
                **common,
            )
        elif kind in ("done", "early"):
            ty = "court.obligation_fulfilled" if kind == "done" else "court.early_deletion"
            r = rec(anyone, ty, at, case_no=draw(st.sampled_from(["c1", "c2"])), **common)
        elif kind == "ended":
            r = rec(
                anyone,
                "court.enforcement_ended",
                at,
                case_no=draw(st.sampled_from(["c1", "c2"])),
                reason="suspended",
                **common,
            )
        elif kind == "transfer":
            r = rec(
                draw(st.sampled_from(ORGS)),
                "court.restriction_transferred",
                at,
                case_no=draw(st.sampled_from(["c1", "c2"])),
                person_id=person,
                **common,
            )
        elif kind == "open":
            r = rec(
                anyone,
                "loan.opened",
                at,
                account_id=draw(st.sampled_from("ab")),
                kind="consumer",
                amount=100.0,
                **common,
            )
        elif kind in ("consent", "withdraw"):
            ty = "subject.consent_granted" if kind == "consent" else "subject.consent_withdrawn"
            r = rec(
                anyone, ty, at, system=draw(st.sampled_from(["testsys", "testsys", "x"])), **common
            )
        elif kind == "rep":
            r = rec(
                draw(st.sampled_from(ORGS)),
                "registry.legal_representative",
                at,
                person_id=person,
                **common,
            )
        else:
            target = f"r{draw(st.integers(0, max(n - 1, 0))):02d}"
            r = rec(
                anyone,
                "record.revoked",
                at,
                target_record_id=target,
                reason="x",
                **{**common, "source_kind": "adjudicator"},
            )
        r["birth_date"] = PERSONS.get(r["subject_id"])
        if "source_kind" not in common and kind != "revoke":
            r["source_kind"] = (
                draw(st.sampled_from(SOURCES)) if draw(st.booleans()) else r["source_kind"]
            )
        out.append(r)
    return out


def opt(draw: Any, value: Any) -> Any:
    return value if draw(st.booleans()) else None


@st.composite
def packs(draw: Any) -> Any:
    rules = []
    for i in range(draw(st.integers(1, 4))):
        ty = draw(st.sampled_from(["traffic.red_light", "loan.payment_overdue"]))
        rule: dict[str, Any] = {
            "id": f"rule{i}",
            "type": ty,
            "points": draw(st.sampled_from([-50, -10, -5.5, 20])),
        }
        if ty == "loan.payment_overdue":
            rule["when"] = opt(
                draw,
                draw(
                    st.sampled_from(
                        [
                            "days_past_due >= 30",
                            "between(days_past_due, 10, 60) and subject.age >= 18",
                        ]
                    )
                ),
            )
            rule["multiplier"] = opt(draw, "ceil(days_past_due / 30)")
            rule["episode"] = opt(
                draw, {"key": "account_id", "ended_by": ["loan.overdue_cured", "loan.opened"]}
            )
        else:
            rule["when"] = opt(draw, "ticket_no in ['x', 'y']")
        rule["window_days"] = opt(draw, draw(st.sampled_from([30, 365, 900])))
        rule["max_count"] = opt(draw, draw(st.integers(1, 3)))
        rule["cap_points"] = opt(draw, draw(st.sampled_from([20, 100])))
        rule["applies_from"] = opt(draw, "2020-01-01")
        rules.append({k: v for k, v in rule.items() if v is not None})
    score: dict[str, Any] = {
        "base": 100,
        "rules": rules,
        "consent_required": draw(st.booleans()),
        "grades": [{"grade": "A", "min": 100}, {"grade": "B", "min": 60}, {"grade": "C"}],
    }
    if draw(st.booleans()):
        score |= {"min_score": 0, "max_score": 110}
    if draw(st.booleans()):
        score["min_age"] = 18
    if draw(st.booleans()):
        score["subject_kinds"] = ["person"]
    if draw(st.booleans()):
        score["min_history"] = {"types": ["loan.opened"], "months": draw(st.sampled_from([1, 6]))}
    terms: list[dict[str, Any]] = []
    if draw(st.booleans()):
        terms.append({"when": "ground == 'able_but_refuses'", "open_ended": True})
    terms.append(draw(st.sampled_from([{"years": 2}, {"days": 200}, {"years": 1, "days": 3}])))
    lst: dict[str, Any] = {
        "id": "dishonest",
        "name": "D",
        "entry_type": "court.listing_decision",
        "key": draw(st.sampled_from(["case_no", None])),
        "start_delay_days": draw(st.sampled_from([0, 3])),
        "start_delay_attribute": opt(draw, "grace_days"),
        "extension_attribute": opt(draw, "extension_years"),
        "terms": terms,
        "removal": [
            {
                "type": "court.obligation_fulfilled",
                "match_key": draw(st.booleans()),
                "applies_to": draw(st.sampled_from(["any", "open_ended"])),
            },
            {"type": "court.enforcement_ended", "applies_to": "open_ended"},
            {"type": "court.early_deletion", "applies_to": "termed"},
        ],
        "applies_from": opt(draw, "2019-03-01"),
        "exclusions": [{"id": "minor", "when": "subject.age < 18"}],
        "legal_basis": "basis",
    }
    retention = []
    if draw(st.booleans()):
        retention.append({"id": "red", "types": ["traffic.red_light"], "years": 2})
    if draw(st.booleans()):
        retention.append(
            {
                "id": "od",
                "types": ["loan.payment_overdue"],
                "years": 1,
                "start": "conduct_end",
                "ended_by": ["loan.overdue_cured"],
                "key": "account_id",
            }
        )
    if draw(st.booleans()):
        retention.append({"id": "lst", "types": ["court.listing_decision"], "years": 3})
    return pack(
        scope={
            "record_types": [
                "traffic.red_light",
                "loan.payment_overdue",
                "loan.overdue_cured",
                "court.listing_decision",
                "court.obligation_fulfilled",
                "court.early_deletion",
                "court.enforcement_ended",
                "court.restriction_transferred",
                "loan.opened",
                "subject.consent_granted",
                "subject.consent_withdrawn",
                "record.revoked",
            ],
            "source_kinds": draw(st.sampled_from([SOURCES, ["court", "city", "lender"]])),
        },
        relations=[
            {
                "id": "legal_representative",
                "legal_basis": "b",
                "transferred_by": opt(draw, "court.restriction_transferred"),
            }
        ],
        meta_effective_from=draw(st.sampled_from(["2000-01-01", "2019-06-01"])),
        score=score,
        lists=[lst],
        consequences=[
            {"id": "k1", "list": "dishonest", "service": "flight", "effect": "deny"},
            {
                "id": "k2",
                "list": "dishonest",
                "service": "flight",
                "effect": "deny",
                "reaches": "legal_representative",
            },
            {
                "id": "k3",
                "grades": ["C"],
                "service": "transit.discount",
                "effect": "deny",
                "reaches": draw(st.sampled_from(["subject", "legal_representative"])),
            },
        ],
        retention=retention,
    )


def rounded(rs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return norm([{**r, "score": round(r["score"], 6)} for r in rs])


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    # CI replays one fixed sequence (it must not fail by chance); a developer's run
    # explores new examples every time.
    derandomize=os.environ.get("CI") == "true",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(records=ledgers(), p=packs(), data=st.data())
def test_engine_equals_reference(store: Store, records: list, p: Any, data: Any) -> None:
    store.sql.execute("DELETE FROM records")
    insert(store, records)
    as_of = instant(data.draw)
    known_at = data.draw(st.sampled_from([as_of, as_of + timedelta(days=200), instant(data.draw)]))
    subjects = data.draw(st.sampled_from([None, ["P1"], ["P2", "O1"]]))
    ev = evaluate(store, [p], as_of=as_of, known_at=known_at, subjects=subjects)
    want = evaluate_reference(records, [p], as_of=as_of, known_at=known_at, subjects=subjects)
    assert rounded(rows(ev.scores)) == rounded(want["scores"])
    assert rows(ev.list_entries) == norm(want["list_entries"])
    assert rows(ev.consequences) == norm(want["consequences"])
