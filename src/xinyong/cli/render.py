"""Human-readable renderings of answers (the JSON forms are the models themselves)."""

from __future__ import annotations

from rich.table import Table
from rich.tree import Tree

from xinyong.checks import Explanation
from xinyong.cli.common import console


def print_explanation(explanation: Explanation) -> None:
    head = f"[bold]{explanation.subject_id}[/] ({explanation.subject_kind}"
    if explanation.age is not None:
        head += f", age {explanation.age}"
    head += f") at {explanation.at}"
    if explanation.known_at:
        head += f", as known at {explanation.known_at}"
    if explanation.flags:
        head += f" [yellow]flags: {', '.join(explanation.flags)}[/]"
    tree = Tree(head)
    for sys in explanation.systems:
        node = tree.add(f"[bold]{sys.system}[/] {sys.version}: {sys.title}")
        if sys.score is not None:
            node.add(f"score {sys.score:g}, grade {sys.grade}")
        if sys.contributions:
            table = Table("occurred", "record", "type", "rule", "points", "legal basis")
            for c in sys.contributions:
                mark = " (illustrative)" if c.get("illustrative") else ""
                table.add_row(
                    str(c.get("occurred_at", ""))[:10],
                    str(c.get("record_id")),
                    str(c.get("type")),
                    str(c.get("rule_id")),
                    f"{c.get('points', 0):+g}",
                    f"{c.get('legal_basis', '')}{mark}",
                )
            node.add(table)
        for r in sys.reasons:
            node.add(
                f"reason {r.get('rank')}: {r.get('rule_id')} ({r.get('dimension') or ''}) "
                f"{r.get('description') or ''}"
            )
        for e in sys.list_entries:
            state = "[red]active[/]" if e["active"] else "ended" if e.get("end_at") else "pending"
            end = e.get("end_at") or "open-ended"
            why = (
                f", {e['end_reason']} by {e.get('ending_record_id') or '-'}"
                if e.get("end_reason")
                else ""
            )
            entry = node.add(
                f"list {e['list_id']} key {e.get('key')}: {state} {e['start_at']} → {end}{why}"
            )
            entry.add(f"entry record {e['entry_record_id']}; legal basis: {e['legal_basis']}")
            if e["active"] and e.get("remedy"):
                entry.add(f"remedy: {e['remedy']}")
        for c in sys.consequences:
            via = f" via {c['via_relation']} of {c['via_subject']}" if c.get("via_relation") else ""
            node.add(
                f"[red]{c['effect']}[/] {c['service']} ({c['rule_id']}{via}): {c['legal_basis']}"
            )
        for section in sys.report:
            sec = node.add(f"{section['title']} ({len(section['records'])})")
            for rec in section["records"]:
                sec.add(f"{str(rec['occurred_at'])[:10]} {rec['type']} {rec['attributes']}")
    console.print(tree)
