"""Human-readable renderings of answers (the JSON forms are the models themselves).

Plain lines, not tables: ids, types and legal bases are printed whole (a table
would cut or wrap them one word per line on a narrow terminal); each legal basis
is printed once and referred to by number."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.markup import escape
from rich.tree import Tree

from xinyong.checks import Explanation
from xinyong.cli.common import console
from xinyong.packs.schema import Pack
from xinyong.timeutil import to_local_iso


def why_no_score(
    store: Any,
    pack: Pack,
    subject_id: str,
    subject_kind: str,
    age: int | None,
    at: datetime,
    known_at: datetime | None,
) -> tuple[str, list[dict[str, Any]]]:
    """Why `pack` gives the subject no score at `at`, and (when consent is what is
    missing) the kept records that would count with consent. Mirrors the pack's
    rules as `engine.scores.eligible` applies them."""
    score = pack.score
    if score is None:
        return f"the {pack.system} system computes no score (it keeps lists only)", []
    if subject_kind not in score.subject_kinds:
        kinds = " and ".join(score.subject_kinds)
        return f"the {pack.system} system scores {kinds} subjects only", []
    if subject_kind == "person" and score.min_age is not None and (age or 0) < score.min_age:
        return (
            f"under {score.min_age} at that instant: the {pack.system} system scores no minors",
            [],
        )
    from xinyong.engine import visible_records
    from xinyong.engine.scope import CONSENT_GRANTED, CONSENT_WITHDRAWN

    visible = visible_records(store, pack, as_of=at, known_at=known_at, subjects=[subject_id])
    rows = (
        visible.filter(visible.subject_id == subject_id)
        .select("record_id", "type", "occurred_at", "attributes")
        .order_by("occurred_at")
        .to_pyarrow()
        .to_pylist()
    )
    consent = [r for r in rows if r["type"] in (CONSENT_GRANTED, CONSENT_WITHDRAWN)]
    others = [r for r in rows if r not in consent]
    counted = {rule.type for rule in score.rules} | {
        t for feature in score.features for t in feature.types
    }
    would_count = [r for r in others if r["type"] in counted]
    if not rows:
        return f"no records of this subject in the {pack.system} system's scope", []
    if score.consent_required:
        return (
            f"the {pack.system} system scores only with the subject's consent, and the "
            "latest consent record at that instant is not a grant",
            would_count,
        )
    return f"the {pack.system} system computes no score for this subject", would_count


def _points(value: Any) -> str:
    return "-" if value is None else f"{value:+g}"


def print_explanation(
    explanation: Explanation, no_score: dict[str, tuple[str, list[dict[str, Any]]]]
) -> None:
    """The explanation as a tree; `no_score`: per system without a score, why, and the
    kept records that would count (`why_no_score`)."""
    head = f"[bold]{escape(explanation.subject_id)}[/] ({explanation.subject_kind}"
    if explanation.age is not None:
        head += f", age {explanation.age}"
    head += f") at {explanation.at}"
    if explanation.known_at:
        head += f", as known at {explanation.known_at}"
    if explanation.flags:
        head += f" [yellow]flags: {escape(', '.join(explanation.flags))}[/]"
    tree = Tree(head)
    for sys in explanation.systems:
        node = tree.add(f"[bold]{sys.system}[/] {sys.version}: {escape(sys.title)}")
        bases: dict[str, int] = {}

        def basis_ref(text: str, bases: dict[str, int] = bases) -> str:
            return f"[{bases.setdefault(text, len(bases) + 1)}]" if text else ""

        if sys.score is not None:
            node.add(f"score {sys.score:g}, grade {sys.grade}")
        elif sys.system in no_score:
            why, records = no_score[sys.system]
            gap = node.add(f"no score: {escape(why)}")
            if records:
                kept = gap.add(f"kept records that would count with consent ({len(records)}):")
                for r in records:
                    day = (to_local_iso(r["occurred_at"]) or "")[:10]
                    kept.add(escape(f"{day} {r['record_id']} {r['type']}"))
        if sys.contributions:
            rows = node.add("records counted (points per record; scorecard features: -)")
            for c in sys.contributions:
                mark = " (illustrative)" if c.get("illustrative") else ""
                rows.add(
                    escape(
                        f"{str(c.get('occurred_at') or '')[:10]} {c.get('record_id')} "
                        f"{c.get('type')} rule {c.get('rule_id')} {_points(c.get('points'))}"
                        f"{mark} "
                    )
                    + escape(basis_ref(str(c.get("legal_basis") or "")))
                )
        for r in sys.reasons:
            lost = r.get("points_lost")
            cost = f"{-float(lost):+g} points against the best" if lost is not None else ""
            dimension = f" ({r['dimension']})" if r.get("dimension") else ""
            description = r.get("description") or ""
            if description == r.get("rule_id"):
                description = ""
            node.add(
                escape(
                    f"reason {r.get('rank')}: {cost}{dimension} "
                    f"{description or 'rule'} [{r.get('rule_id')}]".replace("  ", " ")
                )
            )
        for e in sys.list_entries:
            state = "[red]active[/]" if e["active"] else "ended" if e.get("end_at") else "pending"
            end = e.get("end_at") or "open-ended"
            why = ""
            if e.get("end_reason"):
                by = e.get("ending_record_id")
                why = f", ends: {e['end_reason']}" + (f" (record {by})" if by else "")
            entry = node.add(
                f"list {escape(e['list_id'])} key {escape(str(e.get('key')))}: {state} "
                f"{e['start_at']} → {end}{escape(why)}"
            )
            entry.add(
                escape(
                    f"entry record {e['entry_record_id']}; legal basis "
                    + basis_ref(str(e.get("legal_basis") or ""))
                )
            )
            if e["active"] and e.get("remedy"):
                entry.add(escape(f"remedy: {e['remedy']}"))
            if e.get("disputed"):
                entry.add(escape(f"disputed: objection {e['objection_id']}"))
            for st in e.get("statements") or []:
                entry.add(escape(f"statement ({st['added_at']}): {st['text']}"))
        for c in sys.consequences:
            via = f" via {c['via_relation']} of {c['via_subject']}" if c.get("via_relation") else ""
            node.add(
                f"[red]{escape(c['effect'])}[/] "
                + escape(f"{c['service']} (rule {c['rule_id']}{via}) ")
                + escape(basis_ref(str(c.get("legal_basis") or "")))
            )
        for section in sys.report:
            sec = node.add(escape(f"{section['title']} ({len(section['records'])})"))
            for rec in section["records"]:
                sec.add(escape(f"{str(rec['occurred_at'])[:10]} {rec['type']} {rec['attributes']}"))
        if bases:
            legal = node.add("legal bases")
            for text, number in bases.items():
                legal.add(escape(f"[{number}] {text}"))
    console.print(tree, soft_wrap=False)
