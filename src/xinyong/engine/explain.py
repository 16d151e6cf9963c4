"""The explanation path: which records counted, and what lowered a score most.

Built only with ``explain=True``. ``contributions`` lists every counted
record per rule with its points before the rule's cap (scorecard features list
the records they aggregate, with NULL points). ``reasons`` ranks the rules and
features by points lost: a rule's (capped) negative total, or for a feature
the gap between its best bin and the subject's bin; the top ``score.reasons``.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from xinyong.engine.features import feature_filter
from xinyong.engine.scope import Ledger
from xinyong.engine.scores import Part, counted, rule_match, rule_points
from xinyong.packs.schema import Pack

CONTRIBUTION_COLUMNS = {
    "system": "string",
    "subject_id": "string",
    "rule_id": "string",
    "record_id": "string",
    "type": "string",
    "occurred_at": "timestamp",
    "points": "float64",
    "legal_basis": "string",
    "illustrative": "boolean",
}
REASON_COLUMNS = {
    "system": "string",
    "subject_id": "string",
    "rank": "int64",
    "rule_id": "string",
    "dimension": "string",
    "points_lost": "float64",
    "description": "string",
}


def contributions(pack: Pack, led: Ledger, vis: ir.Table, parts: ir.Table) -> ir.Table | None:
    """Every counted record with its rule, in one pass: the visible records joined
    with a small table of the rules by type (a record may count for several rules),
    each rule's own condition and points picked by rule id."""
    score = pack.score
    assert score is not None
    scored = parts.select(_scored=parts.subject_id)
    rows: list[dict[str, object]] = []
    if score.scorecard is not None:
        features = {f.id: f for f in score.features}
        chosen = [features[sf.feature] for sf in score.scorecard.features]
        chosen = [f for f in chosen if f.aggregate != "age"]
        for f in chosen:
            for ty in f.types or sorted(set(pack.scope.record_types)):
                rows.append(
                    {
                        "_rule": f.id,
                        "_type": ty,
                        "_max": None,
                        "_basis": score.legal_basis,
                        "_illustrative": False,
                    }
                )
    else:
        for rule in score.rules:
            rows.append(
                {
                    "_rule": rule.id,
                    "_type": rule.type,
                    "_max": rule.max_count,
                    "_basis": rule.legal_basis or score.legal_basis,
                    "_illustrative": rule.illustrative,
                }
            )
    if not rows:
        return None
    meta = ibis.memtable(
        rows,
        schema={
            "_rule": "string",
            "_type": "string",
            "_max": "int64",
            "_basis": "string",
            "_illustrative": "boolean",
        },
    )
    j = vis.join(meta, vis.type == meta._type)
    if score.scorecard is not None:
        match = ibis.cases(
            *[(j._rule == f.id, feature_filter(f, j, led.as_of)) for f in chosen], else_=False
        )
        points = ibis.null("float64")
    else:
        match = ibis.cases(
            *[
                (j._rule == r.id, rule_match(r, j, led, since=pack.applies_from(r)))
                for r in score.rules
            ],
            else_=False,
        )
        points = ibis.cases(*[(j._rule == r.id, rule_points(r, j)) for r in score.rules])
    hits = j.filter(match).mutate(points=points.cast("float64"))
    episodic = [r for r in score.rules if r.episode is not None] if score.scorecard is None else []
    if episodic:
        # Only the deepest record of each episode counts (scores.counted).
        kept = [
            counted(r, led, vis, since=pack.applies_from(r)).select(
                _krid="record_id", _krule=ibis.literal(r.id)
            )
            for r in episodic
        ]
        keep = kept[0]
        for k in kept[1:]:
            keep = keep.union(k, distinct=False)
        ids = [r.id for r in episodic]
        plain = hits.filter(~hits._rule.isin(ids))
        deep = hits.semi_join(keep, [hits.record_id == keep._krid, hits._rule == keep._krule])
        hits = plain.union(deep, distinct=False)
    w = ibis.window(
        group_by=[hits.subject_id, hits._rule],
        order_by=[hits.occurred_at.desc(), hits.record_id.desc()],
    )
    hits = hits.mutate(_recency=ibis.row_number().over(w))
    hits = hits.filter(hits._max.isnull() | (hits._recency < hits._max))
    out = hits.select(
        system=ibis.literal(pack.system),
        subject_id=hits.subject_id,
        rule_id=hits._rule,
        record_id=hits.record_id,
        type=hits.type,
        occurred_at=hits.occurred_at,
        points=hits.points,
        legal_basis=hits._basis,
        illustrative=hits._illustrative,
    )
    out = out.select(**{c: out[c].cast(ty) for c, ty in CONTRIBUTION_COLUMNS.items()})
    return out.semi_join(scored, out.subject_id == scored._scored)


def _contribution(
    pack: Pack,
    t: ir.Table,
    rule_id: str,
    points: ir.Value | None,
    basis: str,
    illustrative: bool,
) -> ir.Table:
    row = {
        "system": ibis.literal(pack.system),
        "subject_id": t.subject_id,
        "rule_id": ibis.literal(rule_id),
        "record_id": t.record_id,
        "type": t.type,
        "occurred_at": t.occurred_at,
        "points": points if points is not None else ibis.null("float64"),
        "legal_basis": ibis.literal(basis),
        "illustrative": ibis.literal(illustrative),
    }
    return t.select(**{c: row[c].cast(ty) for c, ty in CONTRIBUTION_COLUMNS.items()})


def reasons(pack: Pack, parts: ir.Table, spec: list[Part]) -> ir.Table | None:
    score = pack.score
    assert score is not None
    if not spec or score.reasons == 0:
        return None
    # One unpivot of the per-subject parts (not one query per rule): the parts
    # table is referenced once, whatever the number of rules.
    columns = [p.column for p in spec]
    long = parts.select("subject_id", *[parts[c].cast("float64").name(c) for c in columns])
    long = long.pivot_longer(columns, names_to="_column", values_to="_points")
    meta = ibis.memtable(
        {
            "_col": [p.column for p in spec],
            "rule_id": [p.rule_id for p in spec],
            "dimension": [p.dimension for p in spec],
            "_best": [float(p.best) for p in spec],
            "description": [p.description for p in spec],
        },
        schema={
            "_col": "string",
            "rule_id": "string",
            "dimension": "string",
            "_best": "float64",
            "description": "string",
        },
    )
    out = long.join(meta, long._column == meta._col)
    out = out.mutate(points_lost=(out._best - out._points).cast("float64"))
    out = out.filter(out.points_lost > 0)
    w = ibis.window(group_by=out.subject_id, order_by=[out.points_lost.desc(), out.rule_id])
    out = out.mutate(rank=ibis.row_number().over(w) + 1, system=ibis.literal(pack.system))
    out = out.filter(out["rank"] <= score.reasons)
    return out.select(**{c: out[c].cast(ty) for c, ty in REASON_COLUMNS.items()})
