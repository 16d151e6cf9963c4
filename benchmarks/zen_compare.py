"""The same Rongcheng score rules, evaluated per subject with zen-engine.

zen-engine (GoRules' Rust rules engine) is the usual way to run business rules
one decision at a time. Each subject's visible records go in as a JSON context;
one compiled ZEN expression, built from the pack's rules, computes the score.
Two ratios are reported against the relational engine's time for the same
scores (all subjects, from the ledger, per subject): zen's evaluation alone
(the data already shaped into one JSON context per subject, which is generous
to zen), and end to end (the visible records fetched from the ledger and
grouped into those contexts, then evaluated), which is what a per-subject rules
engine costs in a registry.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import zen

from xinyong.engine import evaluate
from xinyong.engine.retention import visible
from xinyong.engine.scope import open_ledger
from xinyong.ledger.store import Store
from xinyong.packs import installed_packs
from xinyong.packs.schema import Pack
from xinyong.timeutil import age_on, now_utc, parse_instant


def zen_expression(pack: Pack) -> str:
    """The pack's points rules as one ZEN expression over `records`."""
    score = pack.score
    assert score is not None
    terms = []
    for rule in score.rules:
        assert rule.when in (None, "subject.age >= 18") and rule.cap_points is None
        pred = [f'#.type == "{rule.type}"']
        if rule.when:
            pred.append("#.age >= 18")
        if rule.window_days:
            pred.append(f"#.days_ago <= {rule.window_days}")
        chosen = f"filter(records, {' and '.join(pred)})"
        if rule.multiplier is not None:
            assert rule.multiplier == "ceil(days_past_due / 30)" and rule.max_count is None
            terms.append(f"sum(map({chosen}, {rule.points} * ceil(#.days_past_due / 30)))")
        elif rule.max_count is not None:
            terms.append(f"min([len({chosen}), {rule.max_count}]) * {rule.points}")
        else:
            terms.append(f"len({chosen}) * {rule.points}")
    return f"eligible ? {score.base} + " + " + ".join(terms) + " : null"


def _contexts(store: Store, pack: Pack, as_of: datetime, sample: int) -> dict[str, dict[str, Any]]:
    led = open_ledger(store, as_of, now_utc())
    vis = visible(pack, led)
    # The sample: the first `sample` subjects in id order (a range, so the query
    # stays small whatever the sample size).
    bound = store.sql.execute(
        "SELECT subject_id FROM (SELECT DISTINCT subject_id FROM records "
        "WHERE type IN (SELECT unnest(?))) ORDER BY subject_id LIMIT 1 OFFSET ?",
        [pack.scope.record_types, sample - 1],
    ).fetchone()
    if bound is not None:
        vis = vis.filter(vis.subject_id <= bound[0])
    rows = (
        vis.select(
            "subject_id",
            "subject_kind",
            "birth_date",
            "type",
            "occurred_at",
            "attr_days_past_due",
            "attr_system",
        )
        .to_pyarrow()
        .to_pylist()
    )
    by_subject: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_subject[r["subject_id"]].append(r)
    subjects = sorted(by_subject)[:sample]
    contexts = {}
    for s in subjects:
        recs = by_subject[s]
        granted = max(
            (
                r["occurred_at"]
                for r in recs
                if r["type"] == "subject.consent_granted" and r["attr_system"] == pack.system
            ),
            default=None,
        )
        withdrawn = max(
            (
                r["occurred_at"]
                for r in recs
                if r["type"] == "subject.consent_withdrawn" and r["attr_system"] == pack.system
            ),
            default=None,
        )
        first = recs[0]
        age = age_on(first["birth_date"], as_of)
        eligible = (
            first["subject_kind"] == "person"
            and age is not None
            and age >= 18
            and granted is not None
            and (withdrawn is None or granted > withdrawn)
        )
        contexts[s] = {
            "eligible": eligible,
            "records": [
                {
                    "type": r["type"],
                    "days_ago": (as_of - r["occurred_at"]).total_seconds() / 86400,
                    "age": age_on(r["birth_date"], r["occurred_at"]) or 0,
                    "days_past_due": r["attr_days_past_due"] or 0,
                }
                for r in recs
            ],
        }
    return contexts


def run_zen(db: Path, sample: int, as_of_text: str) -> dict[str, Any]:
    as_of = parse_instant(as_of_text)
    with Store(db) as store:
        pack = next(p for p in installed_packs(store) if p.system == "rongcheng")
        started = time.perf_counter()
        table = evaluate(store, [pack], as_of=as_of).scores.to_pyarrow()
        engine_seconds = time.perf_counter() - started
        engine = dict(zip(table["subject_id"].to_pylist(), table["score"].to_pylist(), strict=True))
        population = store.sql.execute(
            "SELECT count(DISTINCT subject_id) FROM records WHERE type IN (SELECT unnest(?))",
            [pack.scope.record_types],
        ).fetchone()[0]
        t0 = time.perf_counter()
        contexts = _contexts(store, pack, as_of, sample)
        prepare_seconds = time.perf_counter() - t0
    # Window boundaries: the engine counts occurred_at >= as_of - N days.
    expression = zen.compile_expression(zen_expression(pack))
    started = time.perf_counter()
    results = {s: expression.evaluate(ctx) for s, ctx in contexts.items()}
    zen_seconds = time.perf_counter() - started
    mismatches = sum(
        1
        for s, v in results.items()
        if (v is None) != (s not in engine) or (v is not None and abs(engine[s] - v) > 1e-6)
    )
    # Per subject, scaled to the sample: the engine scored the whole population.
    engine_on_sample = engine_seconds / max(population, 1) * len(contexts)
    return {
        "sample": len(contexts),
        "population": population,
        "engine_seconds_all": engine_seconds,
        "engine_seconds": engine_on_sample,
        "zen_seconds": zen_seconds,
        "zen_prepare_seconds": prepare_seconds,
        "zen_eval_vs_engine": zen_seconds / engine_on_sample,
        "zen_end_to_end_vs_engine": (zen_seconds + prepare_seconds) / engine_on_sample,
        "mismatches": mismatches,
        "expression_chars": len(json.dumps(zen_expression(pack))),
    }
