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
from xinyong.engine.scores import Part, counted
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


def _union(tables: list[ir.Table]) -> ir.Table | None:
    if not tables:
        return None
    out = tables[0]
    for t in tables[1:]:
        out = out.union(t, distinct=False)
    return out


def contributions(pack: Pack, led: Ledger, vis: ir.Table, parts: ir.Table) -> ir.Table | None:
    score = pack.score
    assert score is not None
    scored = parts.select(_scored=parts.subject_id)
    pieces = []
    if score.scorecard is not None:
        features = {f.id: f for f in score.features}
        for sf in score.scorecard.features:
            f = features[sf.feature]
            if f.aggregate == "age":
                continue
            t = vis.filter(feature_filter(f, vis, led.as_of))
            pieces.append(_contribution(pack, t, f.id, None, score.legal_basis, False))
    else:
        for rule in score.rules:
            t = counted(rule, led, vis)
            basis = rule.legal_basis or score.legal_basis
            pieces.append(_contribution(pack, t, rule.id, t.points, basis, rule.illustrative))
    out = _union(pieces)
    if out is None:
        return None
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
    pieces = []
    for p in spec:
        lost = (ibis.literal(p.best) - parts[p.column]).cast("float64")
        pieces.append(
            parts.select(
                subject_id=parts.subject_id,
                rule_id=ibis.literal(p.rule_id),
                dimension=ibis.literal(p.dimension, type="string"),
                points_lost=lost,
                description=ibis.literal(p.description),
            )
        )
    out = _union(pieces)
    if out is None or score.reasons == 0:
        return None
    out = out.filter(out.points_lost > 0)
    w = ibis.window(group_by=out.subject_id, order_by=[out.points_lost.desc(), out.rule_id])
    out = out.mutate(rank=ibis.row_number().over(w) + 1, system=ibis.literal(pack.system))
    out = out.filter(out["rank"] <= score.reasons)
    return out.select(**{c: out[c].cast(ty) for c, ty in REASON_COLUMNS.items()})
