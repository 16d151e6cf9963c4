"""The reference evaluator: the engine's semantics in plain Python, no Ibis.

Slow and obvious on purpose; the property tests check that the relational
engine gives the same scores, list entries and consequences. Records are dicts
with record_id, subject_id, subject_kind, birth_date, type, occurred_at,
source_kind, recorded_at and attributes (a dict). The module docstrings of
scores, lists, consequences and retention state the semantics mirrored here.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from xinyong.catalog import load_catalog
from xinyong.engine.scope import CONSENT_GRANTED, CONSENT_WITHDRAWN, REVOKED
from xinyong.packs.expressions import evaluate as eval_expr
from xinyong.packs.expressions import holds, parse
from xinyong.packs.schema import Feature, ListSpec, Pack, RetentionRule, Score, ScoreRule
from xinyong.timeutil import age_on, parse_instant

Record = dict[str, Any]
Row = dict[str, Any]


def add_years(dt: datetime, years: int) -> datetime:
    """Calendar years later; 29 February becomes 28 February (as SQL intervals do)."""
    year = dt.year + years
    day = dt.day
    if dt.month == 2 and day == 29 and not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
        day = 28
    return dt.replace(year=year, day=day)


def _env(r: Record) -> dict[str, Any]:
    env = dict(r["attributes"])
    env["subject.age"] = age_on(r["birth_date"], r["occurred_at"])
    env["subject.kind"] = r["subject_kind"]
    return env


def _holds(text: str | None, r: Record) -> bool:
    return text is None or holds(parse(text), _env(r))


class _Pack:
    """One pack over the known ledger."""

    def __init__(
        self, pack: Pack, known: list[Record], rev: dict[str, tuple[datetime, str]], as_of: datetime
    ) -> None:
        self.pack = pack
        self.as_of = as_of
        self.rev = rev
        self.known = known
        scope = pack.scope
        self.scoped = [
            r
            for r in known
            if r["type"] in scope.record_types and r["source_kind"] in scope.source_kinds
        ]
        self.live = [r for r in self.scoped if r["record_id"] not in rev]
        self.retention: dict[str, RetentionRule] = {}
        for rule in pack.retention:
            for t in rule.types:
                self.retention.setdefault(t, rule)
        self.visible = [
            r for r in self.live if (end := self.retention_end(r)) is None or end > as_of
        ]

    def retention_end(self, r: Record) -> datetime | None:
        rule = self.retention.get(r["type"])
        if rule is None:
            return None
        if rule.start == "occurred":
            return add_years(r["occurred_at"], rule.years)
        assert rule.key is not None
        key = r["attributes"].get(rule.key)
        ends = [
            e["occurred_at"]
            for e in self.live
            if e["type"] in rule.ended_by
            and e["subject_id"] == r["subject_id"]
            and key is not None
            and e["attributes"].get(rule.key) == key
            and e["occurred_at"] >= r["occurred_at"]
        ]
        return add_years(min(ends), rule.years) if ends else None

    # -- scores ---------------------------------------------------------------

    def scores(self) -> list[Row]:
        score = self.pack.score
        if score is None:
            return []
        by_subject: dict[str, list[Record]] = defaultdict(list)
        for r in self.visible:
            by_subject[r["subject_id"]].append(r)
        out = []
        for sid, recs in sorted(by_subject.items()):
            if not self._eligible(score, recs):
                continue
            if score.scorecard is not None:
                value = score.scorecard.offset + sum(p for _, p, _ in self.feature_points(recs))
            else:
                value = score.base + sum(self.rule_total(rule, recs) for rule in score.rules)
            if score.min_score is not None:
                value = max(value, score.min_score)
            if score.max_score is not None:
                value = min(value, score.max_score)
            out.append(
                {
                    "system": self.pack.system,
                    "subject_id": sid,
                    "score": float(value),
                    "grade": _grade(score, value),
                }
            )
        return out

    def _eligible(self, score: Score, recs: list[Record]) -> bool:
        kind = max(r["subject_kind"] for r in recs)
        births = [r["birth_date"] for r in recs if r["birth_date"] is not None]
        birth = max(births) if births else None
        if kind not in score.subject_kinds:
            return False
        if score.min_age is not None and kind == "person":
            age = age_on(birth, self.as_of)
            if age is None or age < score.min_age:
                return False
        if score.consent_required:

            def last(ty: str) -> datetime | None:
                ts = [
                    r["occurred_at"]
                    for r in recs
                    if r["type"] == ty and r["attributes"].get("system") == self.pack.system
                ]
                return max(ts) if ts else None

            granted, withdrawn = last(CONSENT_GRANTED), last(CONSENT_WITHDRAWN)
            if granted is None or (withdrawn is not None and withdrawn >= granted):
                return False
        return True

    def counted(self, rule: ScoreRule, recs: list[Record]) -> list[tuple[Record, float]]:
        hits = []
        for r in recs:
            if r["type"] != rule.type or not _holds(rule.when, r):
                continue
            if rule.applies_from is not None and r["occurred_at"] < parse_instant(
                rule.applies_from
            ):
                continue
            if rule.window_days is not None and r["occurred_at"] < self.as_of - timedelta(
                days=rule.window_days
            ):
                continue
            factor: Any = 1
            if rule.multiplier is not None:
                factor = eval_expr(parse(rule.multiplier), _env(r))
                if factor is None:
                    continue
            hits.append((r, float(rule.points) * factor))
        if rule.max_count is not None:
            hits.sort(key=lambda h: (h[0]["occurred_at"], h[0]["record_id"]), reverse=True)
            hits = hits[: rule.max_count]
        return hits

    def rule_total(self, rule: ScoreRule, recs: list[Record]) -> float:
        total = sum(p for _, p in self.counted(rule, recs))
        if rule.cap_points is not None:
            total = max(-rule.cap_points, min(rule.cap_points, total))
        return float(total)

    def feature_value(self, f: Feature, recs: list[Record]) -> float | None:
        births = [r["birth_date"] for r in recs if r["birth_date"] is not None]
        if f.aggregate == "age":
            age = age_on(max(births), self.as_of) if births else None
            return None if age is None else float(age)
        hits = [
            r
            for r in recs
            if (not f.types or r["type"] in f.types)
            and _holds(f.when, r)
            and (
                f.window_days is None
                or r["occurred_at"] >= self.as_of - timedelta(days=f.window_days)
            )
        ]
        if f.aggregate == "count":
            return float(len(hits))
        if f.aggregate == "days_since_last":
            if not hits:
                return None
            last = max(r["occurred_at"] for r in hits)
            return float(math.floor((self.as_of - last).total_seconds() / 86400))
        values = [r["attributes"].get(f.attribute or "") for r in hits]
        present = [v for v in values if v is not None]
        if f.aggregate == "distinct":
            return float(len(set(present)))
        if not present:
            return None
        return float(sum(present) if f.aggregate == "sum" else max(present))

    def feature_points(self, recs: list[Record]) -> list[tuple[str, float, float]]:
        score = self.pack.score
        assert score is not None and score.scorecard is not None
        features = {f.id: f for f in score.features}
        out = []
        for sf in score.scorecard.features:
            value = self.feature_value(features[sf.feature], recs)
            categorical = any(b.values is not None for b in sf.bins)
            # An unseen category takes the missing bin; any other unbinned value earns 0.
            points = next((b.points for b in sf.bins if b.missing), 0.0) if categorical else 0.0
            for b in sf.bins:
                if b.missing:
                    inside = value is None
                elif b.values is not None:
                    inside = value is not None and value in b.values
                else:
                    inside = (
                        value is not None
                        and (b.lower is None or value >= b.lower)
                        and (b.upper is None or value < b.upper)
                    )
                if inside:
                    points = float(b.points)
                    break
            out.append((sf.feature, points, max((b.points for b in sf.bins), default=0.0)))
        return out

    # -- lists ----------------------------------------------------------------

    def entries(self, spec: ListSpec) -> list[Row]:
        cands = []
        for r in self.scoped:
            if r["type"] != spec.entry_type or r["subject_kind"] not in spec.subject_kinds:
                continue
            if not _holds(spec.when, r):
                continue
            if any(holds(parse(ex.when), _env(r)) for ex in spec.exclusions):
                continue
            term = next((t for t in spec.terms if _holds(t.when, r)), None)
            if term is None:
                continue
            delay = spec.start_delay_days
            if spec.start_delay_attribute is not None:
                delay += int(r["attributes"].get(spec.start_delay_attribute) or 0)
            start = r["occurred_at"] + timedelta(days=delay)
            term_end = None
            if not term.open_ended:
                years = term.years or 0
                if spec.extension_attribute is not None:
                    years += int(r["attributes"].get(spec.extension_attribute) or 0)
                term_end = add_years(start, years) + timedelta(days=term.days or 0)
            key = r["attributes"].get(spec.key) if spec.key else None
            cands.append((r, start, term_end, None if key is None else str(key)))
        rows = []
        for r, start, term_end, key in cands:
            ends: list[tuple[datetime | None, str | None]] = [
                self.rev.get(r["record_id"], (None, None))
            ]
            removals = []
            for rm in spec.removal:
                for x in self.live:
                    if x["type"] != rm.type or x["subject_id"] != r["subject_id"]:
                        continue
                    if x["occurred_at"] < r["occurred_at"] or not _holds(rm.when, x):
                        continue
                    if rm.match_key and spec.key:
                        xkey = x["attributes"].get(spec.key)
                        if (None if xkey is None else str(xkey)) != key:
                            continue
                    removals.append((x["occurred_at"], x["record_id"]))
            ends.append(min(removals) if removals else (None, None))
            nexts = [
                (s["occurred_at"], s["record_id"])
                for s, _, _, skey in cands
                if s["subject_id"] == r["subject_id"]
                and skey == key
                and s["record_id"] not in self.rev
                and (s["occurred_at"], s["record_id"]) > (r["occurred_at"], r["record_id"])
            ]
            ends.append(min(nexts) if nexts else (None, None))
            ends.append((term_end, None))
            ends.append((self.retention_end(r), None))
            end_at, reason, ending = None, None, None
            for (at, rid), why in zip(ends, _REASONS, strict=True):
                if at is not None and (end_at is None or at < end_at):
                    end_at, reason, ending = at, why, rid
            rows.append(
                {
                    "system": self.pack.system,
                    "list_id": spec.id,
                    "subject_id": r["subject_id"],
                    "key": key,
                    "entry_record_id": r["record_id"],
                    "occurred_at": r["occurred_at"],
                    "start_at": start,
                    "end_at": end_at,
                    "end_reason": reason,
                    "ending_record_id": ending,
                }
            )
        return rows

    # -- consequences ---------------------------------------------------------

    def tenures(self, relation: str) -> dict[str, list[tuple[str, datetime, datetime | None]]]:
        rel = load_catalog().relations[relation]
        by_org: dict[str, list[Record]] = defaultdict(list)
        for r in self.known:
            if r["type"] == rel.record_type and r["record_id"] not in self.rev:
                by_org[r["subject_id"]].append(r)
        out: dict[str, list[tuple[str, datetime, datetime | None]]] = {}
        for org, reps in by_org.items():
            reps.sort(key=lambda r: (r["occurred_at"], r["record_id"]))
            out[org] = [
                (
                    r["attributes"][rel.attribute],
                    r["occurred_at"],
                    reps[i + 1]["occurred_at"] if i + 1 < len(reps) else None,
                )
                for i, r in enumerate(reps)
                if r["attributes"].get(rel.attribute) is not None
            ]
        return out

    def consequences(self, entries: list[Row], scores: list[Row]) -> list[Row]:
        lists = {s.id: s for s in self.pack.lists}
        out = []
        for rule in self.pack.consequences:
            bases: list[tuple[str, str, datetime, datetime | None]] = []
            if rule.list is not None:
                spec = lists[rule.list]
                basis, kind = rule.legal_basis or spec.legal_basis, "list"
                remedy = rule.remedy or spec.remedy or None
                for e in entries:
                    if (
                        e["list_id"] == rule.list
                        and (e["end_at"] is None or e["end_at"] > self.as_of)
                        and (e["end_at"] is None or e["start_at"] < e["end_at"])
                    ):
                        bases.append((e["subject_id"], e["list_id"], e["start_at"], e["end_at"]))
            else:
                score = self.pack.score
                basis, kind = rule.legal_basis or (score.legal_basis if score else ""), "grade"
                remedy = rule.remedy or None
                for s in scores:
                    if s["grade"] in (rule.grades or []):
                        bases.append((s["subject_id"], s["grade"], self.as_of, None))
            fixed = {
                "system": self.pack.system,
                "service": rule.service,
                "effect": rule.effect,
                "rule_id": rule.id,
                "basis_kind": kind,
                "legal_basis": basis,
                "remedy": remedy,
            }
            if rule.reaches == "subject":
                for sid, bid, since, until in bases:
                    out.append(
                        {
                            **fixed,
                            "subject_id": sid,
                            "basis_id": bid,
                            "since": since,
                            "until": until,
                            "via_relation": None,
                            "via_subject": None,
                        }
                    )
                continue
            tenures = self.tenures(rule.reaches)
            for sid, bid, since, until in bases:
                for person, t_from, t_until in tenures.get(sid, []):
                    begin = max(since, t_from)
                    u = _min_open(until, t_until)
                    if u is None or begin < u:
                        out.append(
                            {
                                **fixed,
                                "subject_id": person,
                                "basis_id": bid,
                                "since": begin,
                                "until": u,
                                "via_relation": rule.reaches,
                                "via_subject": sid,
                            }
                        )
        return out


_REASONS = ("revoked", "removal", "superseded", "term", "retention")


def _min_open(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _grade(score: Score, value: float) -> str | None:
    for band in score.grades:
        if band.min is None or value >= band.min:
            return band.grade
    return None


def evaluate_reference(
    records: Iterable[Record],
    packs: Iterable[Pack],
    *,
    as_of: datetime,
    known_at: datetime,
    subjects: Iterable[str] | None = None,
) -> dict[str, list[Row]]:
    """scores, list_entries and consequences as lists of row dicts."""
    known = [r for r in records if r["recorded_at"] <= known_at and r["occurred_at"] <= as_of]
    rev: dict[str, tuple[datetime, str]] = {}
    for r in known:
        if r["type"] == REVOKED:
            target = r["attributes"].get("target_record_id")
            if target is not None:
                mark = (r["occurred_at"], r["record_id"])
                rev[target] = min(rev.get(target, mark), mark)
    out: dict[str, list[Row]] = {"scores": [], "list_entries": [], "consequences": []}
    for pack in packs:
        ev = _Pack(pack, known, rev, as_of)
        scores = ev.scores()
        entries = [e for spec in pack.lists for e in ev.entries(spec)]
        out["scores"] += scores
        out["list_entries"] += entries
        out["consequences"] += ev.consequences(entries, scores)
    if subjects is not None:
        wanted = set(subjects)
        out = {k: [r for r in rows if r["subject_id"] in wanted] for k, rows in out.items()}
    return out
