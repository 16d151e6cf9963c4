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

from xinyong.calendar import add_days
from xinyong.catalog import load_catalog
from xinyong.catalog.vocabulary import REVOKED
from xinyong.engine.scope import CONSENT_GRANTED, CONSENT_WITHDRAWN
from xinyong.packs.expressions import evaluate as eval_expr
from xinyong.packs.expressions import holds, parse
from xinyong.packs.schema import Feature, ListSpec, Pack, RetentionRule, Score, ScoreRule
from xinyong.timeutil import (
    add_local_months,
    add_local_years,
    age_on,
    local_date,
    local_midnight,
)

Record = dict[str, Any]
Row = dict[str, Any]


def add_years(dt: datetime, years: int) -> datetime:
    """Calendar years later on the Asia/Shanghai calendar (timeutil.add_local_years)."""
    return add_local_years(dt, years)


def period_end(dt: datetime, days: int) -> datetime:
    """When a period of ``days`` days starting at ``dt`` is over (Civil Procedure Law
    Art. 85, ``xinyong.calendar.add_days``): 00:00 local after its last day."""
    if days <= 0:
        return dt
    last = add_days(local_date(dt), days)
    return local_midnight(last + timedelta(days=1))


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
        if score.min_history is not None:
            hist = score.min_history
            if not any(
                r["type"] in hist.types
                and add_local_months(r["occurred_at"], hist.months) <= self.as_of
                for r in recs
            ):
                return False
        return True

    def counted(self, rule: ScoreRule, recs: list[Record]) -> list[tuple[Record, float]]:
        hits = []
        for r in recs:
            if r["type"] != rule.type or not _holds(rule.when, r):
                continue
            if r["occurred_at"] < local_midnight(self.pack.applies_from(rule)):
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
        if rule.episode is not None:
            hits = self.deepest_per_episode(rule, recs, hits)
        if rule.max_count is not None:
            hits.sort(key=lambda h: (h[0]["occurred_at"], h[0]["record_id"]), reverse=True)
            hits = hits[: rule.max_count]
        return hits

    def deepest_per_episode(
        self, rule: ScoreRule, recs: list[Record], hits: list[tuple[Record, float]]
    ) -> list[tuple[Record, float]]:
        assert rule.episode is not None
        ep = rule.episode

        def key(r: Record) -> str:
            k = r["attributes"].get(ep.key)
            return "#" + r["record_id"] if k is None else str(k)

        groups: dict[tuple[str, int], list[tuple[Record, float]]] = defaultdict(list)
        for r, p in hits:
            episode = sum(
                1
                for e in recs
                if e["type"] in ep.ended_by
                and e["attributes"].get(ep.key) is not None
                and str(e["attributes"][ep.key]) == key(r)
                and e["occurred_at"] < r["occurred_at"]
            )
            groups[(key(r), episode)].append((r, p))
        return [
            max(g, key=lambda h: (abs(h[1]), h[0]["occurred_at"], h[0]["record_id"]))
            for g in groups.values()
        ]

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
        first_day = local_midnight(self.pack.applies_from(spec))
        for r in self.scoped:
            if r["type"] != spec.entry_type or r["subject_kind"] not in spec.subject_kinds:
                continue
            if r["occurred_at"] < first_day:
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
            start = period_end(r["occurred_at"], delay)
            term_end = None
            if not term.open_ended:
                years = term.years or 0
                if spec.extension_attribute is not None:
                    years += int(r["attributes"].get(spec.extension_attribute) or 0)
                term_end = add_years(start, years) + timedelta(days=term.days or 0)
            key = r["attributes"].get(spec.key) if spec.key else None
            cands.append((r, start, term_end, None if key is None else str(key), term.open_ended))
        own: dict[str, list[tuple[datetime | None, str | None]]] = {}
        for r, _start, term_end, key, open_ended in cands:
            ends: list[tuple[datetime | None, str | None]] = [
                self.rev.get(r["record_id"], (None, None))
            ]
            removals = []
            for rm in spec.removal:
                if rm.applies_to == "open_ended" and not open_ended:
                    continue
                if rm.applies_to == "termed" and open_ended:
                    continue
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
            ends.append((term_end, None))
            ends.append((self.retention_end(r), None))
            own[r["record_id"]] = ends

        def own_end(rid: str) -> datetime:
            return min((at for at, _ in own[rid] if at is not None), default=_FAR)

        rows = []
        for r, start, _term_end, key, _open in cands:
            # A later decision on the same case ends this entry only when it lasts at
            # least as long (a later decision may extend, never shorten).
            nexts = [
                (s["occurred_at"], s["record_id"], sstart)
                for s, sstart, _, skey, _ in cands
                if s["subject_id"] == r["subject_id"]
                and skey == key
                and s["record_id"] not in self.rev
                and (s["occurred_at"], s["record_id"]) > (r["occurred_at"], r["record_id"])
                and own_end(s["record_id"]) >= own_end(r["record_id"])
            ]
            succ = min(nexts) if nexts else None
            rev_end, rem_end, term_end_, ret_end = own[r["record_id"]]
            ends = [
                rev_end,
                rem_end,
                (succ[2], succ[1]) if succ else (None, None),
                term_end_,
                ret_end,
            ]
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

    def holders(
        self,
        record_type: str,
        org: str,
        key: str | None,
        start: datetime,
        tenures: list[tuple[str, datetime, datetime | None]],
    ) -> list[tuple[str, datetime, datetime | None]]:
        """Who holds an organization's restriction when a court transfers it (Fa Fa
        [2019] No. 35, item 17(2); engine/transfers.py)."""
        spec_keys = {s.key for s in self.pack.lists}
        attr_key = next(iter(spec_keys)) if len(spec_keys) == 1 else None
        moves = sorted(
            (r["occurred_at"], r["record_id"], r["attributes"].get("person_id"))
            for r in self.known
            if r["type"] == record_type
            and r["record_id"] not in self.rev
            and r["subject_id"] == org
            and _key_of(r, attr_key) == key
        )
        first = moves[0][0] if moves else None
        out = [
            (person, start, first)
            for person, t_from, t_until in tenures
            if t_from <= start and (t_until is None or t_until > start)
        ]
        for i, (at, _, person) in enumerate(moves):
            if person is not None:
                out.append((str(person), at, moves[i + 1][0] if i + 1 < len(moves) else None))
        return out

    def consequences(self, entries: list[Row], scores: list[Row]) -> list[Row]:
        lists = {s.id: s for s in self.pack.lists}
        out = []
        for rule in self.pack.consequences:
            bases: list[tuple[str, str, datetime, datetime | None, str | None]] = []
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
                        bases.append(
                            (e["subject_id"], e["list_id"], e["start_at"], e["end_at"], e["key"])
                        )
            else:
                score = self.pack.score
                basis, kind = rule.legal_basis or (score.legal_basis if score else ""), "grade"
                remedy = rule.remedy or None
                for s in scores:
                    if s["grade"] in (rule.grades or []):
                        bases.append((s["subject_id"], s["grade"], self.as_of, None, None))
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
                for sid, bid, since, until, _ in bases:
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
            use = next(r for r in self.pack.relations if r.id == rule.reaches)
            moved = use.transferred_by if rule.list is not None else None
            for sid, bid, since, until, key in bases:
                held = tenures.get(sid, [])
                if moved is not None:
                    held = self.holders(moved, sid, key, since, held)
                for person, t_from, t_until in held:
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
_FAR = datetime(9999, 12, 31)


def _key_of(r: Record, attr_key: str | None) -> str | None:
    if attr_key is None:
        return None
    value = r["attributes"].get(attr_key)
    return None if value is None else str(value)


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
