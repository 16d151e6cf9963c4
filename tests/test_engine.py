"""Focused examples of the evaluation semantics (packs/schema.py docstring)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from test_engine_support import insert, pack, rec, rows
from xinyong.engine import evaluate, feature_table, materialize, visible_records
from xinyong.ledger.store import Store
from xinyong.packs.schema import Pack
from xinyong.timeutil import parse_instant as T

MUNI = [
    "traffic.red_light",
    "civic.heroic_act",
    "subject.consent_granted",
    "subject.consent_withdrawn",
    "record.revoked",
    "loan.payment_overdue",
]
ADULT = date(1980, 5, 1)


@pytest.fixture
def store() -> Iterator[Store]:
    with Store(":memory:") as s:
        yield s


def points_pack(**score: Any) -> Pack:
    body = {
        "base": 1000,
        "rules": [
            {"id": "red", "type": "traffic.red_light", "points": -5},
            {"id": "hero", "type": "civic.heroic_act", "points": 30},
        ],
        "grades": [{"grade": "A", "min": 1000}, {"grade": "B", "min": 950}, {"grade": "C"}],
    }
    body.update(score)
    return pack(
        scope={"record_types": MUNI, "source_kinds": ["city", "court", "lender"]}, score=body
    )


def score_map(store: Store, p: Pack, **kw: Any) -> dict[str, tuple[float, str]]:
    ev = evaluate(store, [p], **kw)
    return {r["subject_id"]: (r["score"], r["grade"]) for r in rows(ev.scores)}


def test_points_base_grades_and_scope(store: Store) -> None:
    insert(
        store,
        [
            rec("P1", "traffic.red_light", T("2024-01-01"), birth_date=ADULT, ticket_no="1"),
            rec("P1", "traffic.red_light", T("2024-02-01"), birth_date=ADULT, ticket_no="2"),
            rec("P2", "civic.heroic_act", T("2024-01-01"), birth_date=ADULT, citation_no="x"),
            # out of scope: wrong source kind
            rec("P3", "traffic.red_light", T("2024-01-01"), source_kind="utility", ticket_no="3"),
        ],
    )
    got = score_map(store, points_pack(), as_of=T("2024-06-01"))
    assert got == {"P1": (990.0, "B"), "P2": (1030.0, "A")}


def test_window_max_count_cap_applies_from_clamp(store: Store) -> None:
    insert(
        store,
        [rec("P1", "traffic.red_light", T(f"2024-0{m}-01"), ticket_no=str(m)) for m in range(1, 7)],
    )
    p = points_pack(
        rules=[
            {"id": "w", "type": "traffic.red_light", "points": -1, "window_days": 40},
            {"id": "n", "type": "traffic.red_light", "points": -10, "max_count": 2},
            {"id": "c", "type": "traffic.red_light", "points": -100, "cap_points": 250},
            {"id": "f", "type": "traffic.red_light", "points": -1000, "applies_from": "2024-05-15"},
        ],
        min_score=-2000,
    )
    # w: -2 (May 1 is exactly 40 days back: inclusive); n: -20; c: -250; f: -1000 (Jun)
    assert score_map(store, p, as_of=T("2024-06-10"))["P1"][0] == 1000 - 2 - 20 - 250 - 1000
    p2 = points_pack(min_score=0, max_score=999)
    assert score_map(store, p2, as_of=T("2024-06-10"))["P1"][0] == 970


def test_multiplier_and_when(store: Store) -> None:
    insert(
        store,
        [
            rec(
                "P1",
                "loan.payment_overdue",
                T("2024-01-01"),
                source_kind="lender",
                account_id="a",
                days_past_due=65,
                amount_due=1.0,
            ),
            rec(
                "P1",
                "loan.payment_overdue",
                T("2024-02-01"),
                source_kind="lender",
                account_id="a",
                days_past_due=10,
                amount_due=1.0,
            ),
        ],
    )
    p = points_pack(
        rules=[
            {
                "id": "od",
                "type": "loan.payment_overdue",
                "points": -10,
                "multiplier": "ceil(days_past_due / 30)",
                "when": "days_past_due >= 30",
            }
        ]
    )
    assert score_map(store, p, as_of=T("2024-06-01"))["P1"][0] == 970


def test_consent_granted_withdrawn(store: Store) -> None:
    insert(
        store,
        [
            rec("P1", "traffic.red_light", T("2024-01-01"), ticket_no="1"),
            rec(
                "P1",
                "subject.consent_granted",
                T("2024-02-01"),
                source_kind="city",
                system="testsys",
            ),
            rec(
                "P1",
                "subject.consent_withdrawn",
                T("2024-04-01"),
                source_kind="city",
                system="testsys",
            ),
            rec("P2", "traffic.red_light", T("2024-01-01"), ticket_no="1"),
            rec(
                "P2", "subject.consent_granted", T("2024-02-01"), source_kind="city", system="other"
            ),
        ],
    )
    p = points_pack(consent_required=True)
    assert score_map(store, p, as_of=T("2024-01-15")) == {}
    assert score_map(store, p, as_of=T("2024-03-01")) == {"P1": (995.0, "B")}
    assert score_map(store, p, as_of=T("2024-05-01")) == {}


def test_min_age_and_subject_kinds(store: Store) -> None:
    insert(
        store,
        [
            rec(
                "P1",
                "traffic.red_light",
                T("2024-01-01"),
                birth_date=date(2007, 3, 1),
                ticket_no="1",
            ),
            rec("O1", "traffic.red_light", T("2024-01-01"), ticket_no="2"),
        ],
    )
    p = points_pack(min_age=18)
    assert set(score_map(store, p, as_of=T("2025-02-28"))) == {"O1"}
    assert set(score_map(store, p, as_of=T("2025-03-01"))) == {"O1", "P1"}
    p2 = points_pack(subject_kinds=["person"])
    assert set(score_map(store, p2, as_of=T("2025-03-01"))) == {"P1"}


def test_as_of_known_at_and_revocation_in_scores(store: Store) -> None:
    insert(
        store,
        [
            rec("P1", "traffic.red_light", T("2024-01-01"), record_id="a", ticket_no="1"),
            rec(
                "P1",
                "traffic.red_light",
                T("2024-03-01"),
                record_id="b",
                ticket_no="2",
                recorded_at=T("2024-05-01"),
            ),
            rec(
                "P1",
                "record.revoked",
                T("2024-04-01"),
                record_id="rv",
                target_record_id="a",
                reason="wrong",
                source_kind="city",
            ),
        ],
    )
    p = points_pack()
    assert score_map(store, p, as_of=T("2024-02-01"))["P1"][0] == 995
    assert score_map(store, p, as_of=T("2024-03-15"), known_at=T("2024-03-15"))["P1"][0] == 995
    assert score_map(store, p, as_of=T("2024-03-15"))["P1"][0] == 990
    assert score_map(store, p, as_of=T("2024-06-01"))["P1"][0] == 995


LIST = {
    "id": "dishonest",
    "name": "Dishonest",
    "entry_type": "court.listing_decision",
    "key": "case_no",
    "start_delay_attribute": "grace_days",
    "extension_attribute": "extension_years",
    "terms": [{"when": "ground == 'able_but_refuses'", "open_ended": True}, {"years": 2}],
    "removal": [{"type": "court.obligation_fulfilled"}],
    "exclusions": [{"id": "minor", "when": "subject.age < 18"}],
    "legal_basis": "Fa Shi [2017] No. 7",
    "remedy": "perform",
}
COURT = [
    "court.listing_decision",
    "court.obligation_fulfilled",
    "record.revoked",
    "registry.legal_representative",
]


def list_pack(**extra: Any) -> Pack:
    return pack(
        scope={"record_types": COURT, "source_kinds": ["court", "regulator", "adjudicator"]},
        relations=[{"id": "legal_representative", "legal_basis": "SPC 2015"}],
        lists=[LIST],
        consequences=[
            {"id": "fly", "list": "dishonest", "service": "flight", "effect": "deny"},
            {
                "id": "fly-rep",
                "list": "dishonest",
                "service": "flight",
                "effect": "deny",
                "reaches": "legal_representative",
            },
        ],
        **extra,
    )


def listing(sid: str, at: str, case: str, ground: str = "evades_enforcement", **kw: Any) -> dict:
    attrs: dict[str, Any] = {"grace_days": 0, "extension_years": 0}
    attrs.update(kw)
    return rec(sid, "court.listing_decision", T(at), case_no=case, ground=ground, **attrs)


def entries(store: Store, p: Pack, **kw: Any) -> dict[str, dict]:
    return {r["entry_record_id"]: r for r in rows(evaluate(store, [p], **kw).list_entries)}


def test_terms_extension_grace_open_ended(store: Store) -> None:
    insert(
        store,
        [
            listing("P1", "2020-01-01", "c1", record_id="e1"),
            listing("P1", "2020-01-01", "c2", record_id="e2", extension_years=1, grace_days=30),
            listing("P1", "2020-01-01", "c3", ground="able_but_refuses", record_id="e3"),
        ],
    )
    got = entries(store, list_pack(), as_of=T("2021-01-01"))
    assert got["e1"]["end_at"] == T("2022-01-01") and got["e1"]["end_reason"] == "term"
    # Civil Procedure Law Art. 85: 2020-01-01 is not counted, day 30 is 2020-01-31, a
    # holiday (Spring Festival 2020, extended to 2 February), so the grace period ends
    # on Monday 2020-02-03 and the restriction starts at 00:00 on 2020-02-04.
    assert got["e2"]["start_at"] == T("2020-02-04")
    assert got["e2"]["end_at"] == T("2023-02-04")
    assert got["e3"]["end_at"] is None and got["e3"]["end_reason"] is None


def test_keyed_removal_supersession_revocation(store: Store) -> None:
    insert(
        store,
        [
            listing("P1", "2020-01-01", "c1", record_id="e1"),
            listing("P1", "2020-01-01", "c2", record_id="e2"),
            rec("P1", "court.obligation_fulfilled", T("2020-06-01"), record_id="f1", case_no="c1"),
            listing("P1", "2020-09-01", "c2", record_id="e2b"),
            listing("P1", "2020-02-01", "c4", record_id="e4"),
            rec(
                "P1",
                "record.revoked",
                T("2020-03-01"),
                record_id="rv",
                target_record_id="e4",
                reason="wrongful",
                source_kind="adjudicator",
            ),
        ],
    )
    got = entries(store, list_pack(), as_of=T("2021-01-01"))
    assert (got["e1"]["end_reason"], got["e1"]["ending_record_id"]) == ("removal", "f1")
    assert got["e1"]["end_at"] == T("2020-06-01")
    assert (got["e2"]["end_reason"], got["e2"]["ending_record_id"]) == ("superseded", "e2b")
    assert got["e2b"]["end_reason"] == "term"
    assert (got["e4"]["end_reason"], got["e4"]["end_at"]) == ("revoked", T("2020-03-01"))
    # before the removal happened, it is unknown
    before = entries(store, list_pack(), as_of=T("2020-05-01"))
    assert before["e1"]["end_reason"] == "term"


def test_minor_never_listed(store: Store) -> None:
    insert(
        store,
        [
            listing("P1", "2020-01-01", "c1", record_id="m", birth_date=date(2003, 1, 2)),
            listing("P2", "2021-01-02", "c1", record_id="a", birth_date=date(2003, 1, 2)),
        ],
    )
    got = entries(store, list_pack(), as_of=T("2021-06-01"))
    assert set(got) == {"a"}


def test_consequences_and_legal_representative(store: Store) -> None:
    insert(
        store,
        [
            rec("O1", "registry.legal_representative", T("2019-01-01"), person_id="P1"),
            rec("O1", "registry.legal_representative", T("2020-06-01"), person_id="P2"),
            listing("O1", "2020-01-01", "c1", record_id="e1"),
        ],
    )
    ev = evaluate(store, [list_pack()], as_of=T("2020-07-01"))
    cons = rows(ev.consequences)
    mine = {(c["subject_id"], c["rule_id"], c["since"], c["until"], c["via_subject"]) for c in cons}
    assert mine == {
        ("O1", "fly", T("2020-01-01"), T("2022-01-01"), None),
        ("P1", "fly-rep", T("2020-01-01"), T("2020-06-01"), "O1"),
        ("P2", "fly-rep", T("2020-06-01"), T("2022-01-01"), "O1"),
    }
    assert all(c["legal_basis"] == "Fa Shi [2017] No. 7" for c in cons)
    # per-subject replay finds what reaches P2 through O1
    only = rows(evaluate(store, [list_pack()], as_of=T("2020-07-01"), subjects=["P2"]).consequences)
    assert [(c["subject_id"], c["rule_id"]) for c in only] == [("P2", "fly-rep")]
    # not active any more at as_of -> no consequence
    assert rows(evaluate(store, [list_pack()], as_of=T("2022-02-01")).consequences) == []


def test_grade_consequence(store: Store) -> None:
    insert(
        store,
        [rec("P1", "traffic.red_light", T("2024-01-01"), ticket_no=str(i)) for i in range(20)],
    )
    p = points_pack()
    p = p.model_copy(update={"consequences": []})
    body = p.model_dump()
    body["consequences"] = [
        {"id": "no-disc", "grades": ["C"], "service": "transit.discount", "effect": "deny"}
    ]
    from xinyong.packs.schema import Pack

    p = Pack.model_validate(body)
    cons = rows(evaluate(store, [p], as_of=T("2024-02-01")).consequences)
    assert [
        (c["subject_id"], c["basis_kind"], c["basis_id"], c["since"], c["until"]) for c in cons
    ] == [("P1", "grade", "C", T("2024-02-01"), None)]


def test_retention_occurred_and_conduct_end(store: Store) -> None:
    insert(
        store,
        [
            rec("P1", "traffic.red_light", T("2018-01-01"), ticket_no="1", record_id="old"),
            rec(
                "P1",
                "loan.payment_overdue",
                T("2015-01-01"),
                source_kind="lender",
                record_id="od",
                account_id="a",
                days_past_due=40,
                amount_due=1.0,
            ),
            rec(
                "P1",
                "loan.payment_overdue",
                T("2015-01-01"),
                source_kind="lender",
                record_id="od2",
                account_id="b",
                days_past_due=40,
                amount_due=1.0,
            ),
            rec("P1", "loan.overdue_cured", T("2016-01-01"), source_kind="lender", account_id="a"),
        ],
    )
    p = points_pack(
        rules=[
            {"id": "red", "type": "traffic.red_light", "points": -5},
            {"id": "od", "type": "loan.payment_overdue", "points": -10},
        ]
    )
    body = p.model_dump()
    body["scope"]["record_types"].append("loan.overdue_cured")
    body["retention"] = [
        {"id": "r1", "types": ["traffic.red_light"], "years": 3},
        {
            "id": "r2",
            "types": ["loan.payment_overdue"],
            "years": 5,
            "start": "conduct_end",
            "ended_by": ["loan.overdue_cured"],
            "key": "account_id",
        },
    ]
    from xinyong.packs.schema import Pack

    p = Pack.model_validate(body)
    assert score_map(store, p, as_of=T("2020-12-31"))["P1"][0] == 1000 - 5 - 20
    assert score_map(store, p, as_of=T("2021-01-02"))["P1"][0] == 1000 - 10
    vis = rows(visible_records(store, p, as_of=T("2020-06-01")))
    ends = {r["record_id"]: r["retention_end"] for r in vis}
    assert ends["old"] == T("2021-01-01") and ends["od"] == T("2021-01-01")
    assert ends["od2"] is None


def test_explain_and_materialize(store: Store) -> None:
    insert(
        store,
        [
            rec("P1", "traffic.red_light", T("2024-01-01"), ticket_no="1"),
            rec("P1", "traffic.red_light", T("2024-01-02"), ticket_no="2"),
            rec("P1", "civic.heroic_act", T("2024-01-02"), citation_no="x"),
        ],
    )
    ev = evaluate(store, [points_pack()], as_of=T("2024-02-01"), explain=True)
    assert ev.contributions is not None and ev.reasons is not None
    assert sorted(r["points"] for r in rows(ev.contributions)) == [-5.0, -5.0, 30.0]
    reasons = rows(ev.reasons)
    assert [(r["rank"], r["rule_id"], r["points_lost"]) for r in reasons] == [(1, "red", 10.0)]
    run = materialize(store, evaluate(store, [points_pack()], as_of=T("2024-02-01")))
    assert run == 1
    assert store.sql.execute("SELECT subject_id, score FROM scores").fetchall() == [("P1", 1020.0)]
    assert materialize(store, ev) == 2
    assert store.sql.execute("SELECT count(*) FROM scores").fetchone() == (1,)
    assert store.sql.execute("SELECT last_batch FROM eval_runs WHERE run_id = 2").fetchone() == (1,)


def test_scorecard_and_feature_table(store: Store) -> None:
    insert(
        store,
        [
            rec(
                "P1",
                "loan.payment_overdue",
                T("2024-01-01"),
                source_kind="lender",
                account_id="a",
                days_past_due=40,
                amount_due=100.0,
                birth_date=ADULT,
            ),
            rec(
                "P1",
                "loan.payment_overdue",
                T("2024-01-11"),
                source_kind="lender",
                account_id="b",
                days_past_due=10,
                amount_due=50.0,
                birth_date=ADULT,
            ),
            rec("P2", "traffic.red_light", T("2024-01-01"), ticket_no="1", birth_date=ADULT),
        ],
    )
    features = [
        {
            "id": "n_od",
            "dimension": "credit_history",
            "aggregate": "count",
            "types": ["loan.payment_overdue"],
        },
        {
            "id": "due",
            "dimension": "capacity",
            "aggregate": "sum",
            "types": ["loan.payment_overdue"],
            "attribute": "amount_due",
        },
        {
            "id": "accts",
            "dimension": "behaviour",
            "aggregate": "distinct",
            "types": ["loan.payment_overdue"],
            "attribute": "account_id",
        },
        {
            "id": "since",
            "dimension": "behaviour",
            "aggregate": "days_since_last",
            "types": ["loan.payment_overdue"],
        },
        {"id": "age", "dimension": "identity", "aggregate": "age"},
    ]
    card = {
        "offset": 600,
        "features": [
            {"feature": "n_od", "bins": [{"upper": 1, "points": 50}, {"lower": 1, "points": -20}]},
            {
                "feature": "since",
                "bins": [
                    {"missing": True, "points": 30},
                    {"upper": 30, "points": -40},
                    {"lower": 30, "points": 0},
                ],
            },
        ],
    }
    p = pack(
        scope={"record_types": MUNI, "source_kinds": ["city", "lender"]},
        score={"features": features, "scorecard": card},
    )
    got = score_map(store, p, as_of=T("2024-02-01"))
    assert got == {"P1": (540.0, None), "P2": (680.0, None)}
    table = {r["subject_id"]: r for r in rows(feature_table(store, p, T("2024-02-01")))}
    assert table["P1"]["n_od"] == 2 and table["P1"]["due"] == 150 and table["P1"]["accts"] == 2
    assert table["P1"]["since"] == 21 and table["P1"]["age"] == 43
    assert table["P2"]["due"] is None and table["P2"]["since"] is None
    ev = evaluate(store, [p], as_of=T("2024-02-01"), explain=True)
    assert ev.reasons is not None
    top = [(r["subject_id"], r["rule_id"], r["points_lost"]) for r in rows(ev.reasons)]
    assert ("P1", "n_od", 70.0) in top and ("P1", "since", 70.0) in top


def test_arrears_episode_counts_its_deepest_report_once(store: Store) -> None:
    # "-10 per monthly cycle" (Rongcheng standards): reports at 30, 60 and 90 days on
    # one account are one episode, 3 cycles deep; a cure starts a new episode.
    def overdue(at: str, days: int, rid: str) -> dict:
        return rec(
            "P1",
            "loan.payment_overdue",
            T(at),
            record_id=rid,
            source_kind="lender",
            account_id="a",
            days_past_due=days,
            amount_due=1.0,
        )

    cured = rec("P1", "loan.overdue_cured", T("2024-05-01"), source_kind="lender", account_id="a")
    insert(
        store,
        [
            overdue("2024-01-01", 30, "o30"),
            overdue("2024-02-01", 60, "o60"),
            overdue("2024-03-01", 90, "o90"),
            cured,
            overdue("2024-06-01", 30, "n30"),
        ],
    )
    rule = {
        "id": "arrears",
        "type": "loan.payment_overdue",
        "points": -10,
        "multiplier": "ceil(days_past_due / 30)",
        "episode": {"key": "account_id", "ended_by": ["loan.overdue_cured"]},
    }
    p = pack(
        scope={"record_types": [*MUNI, "loan.overdue_cured"], "source_kinds": ["lender"]},
        score={"base": 1000, "rules": [rule]},
    )
    assert score_map(store, p, as_of=T("2024-04-01"))["P1"][0] == 970
    ev = evaluate(store, [p], as_of=T("2024-07-01"), explain=True)
    assert [r["score"] for r in rows(ev.scores)] == [960.0]
    assert ev.contributions is not None
    assert sorted((r["record_id"], r["points"]) for r in rows(ev.contributions)) == [
        ("n30", -10.0),
        ("o90", -30.0),
    ]


def test_grace_periods_end_on_the_working_day_the_calendar_gives(store: Store) -> None:
    # Every day of 2024 through the National Day week of 2025, with 30 and 92 days'
    # grace: the engine's working-day table agrees with xinyong.calendar (Art. 85).
    from datetime import timedelta

    from xinyong.engine.reference import period_end

    decided = [
        T("2024-01-01") + timedelta(days=i, hours=h) for i in range(0, 640, 3) for h in (0, 15)
    ]
    insert(
        store,
        [
            listing("P1", "2024-01-01", f"k{i}", record_id=f"g{i}", grace_days=g)
            | {"occurred_at": at, "recorded_at": at}
            for i, (at, g) in enumerate((at, g) for at in decided for g in (30, 92))
        ],
    )
    got = entries(store, list_pack(), as_of=T("2026-01-01"))
    want = {
        f"g{i}": period_end(at, g)
        for i, (at, g) in enumerate((at, g) for at in decided for g in (30, 92))
    }
    assert {rid: row["start_at"] for rid, row in got.items()} == want
