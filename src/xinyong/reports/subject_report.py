"""The subject report: everything the registry holds and derives about one
subject, across every system, with the subject's rights and deadlines.

One model (``SubjectReport``) feeds three forms: JSON (the model itself), HTML
(a self-contained page, ``templates/subject_report.html.j2``) and PDF, made by
WeasyPrint from that same HTML. Chinese text (names, system titles) is set in
a CJK font installed from a Debian package (WenQuanYi Zen Hei or Noto Sans CJK,
see .ci/run), named first in the page's font stack so that it never falls
back to boxes.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel, Field

from xinyong.audit.chain import AuditEntry
from xinyong.catalog.vocabulary import attribute_column
from xinyong.ledger.store import Store
from xinyong.timeutil import now_utc, parse_instant, to_local_iso

DISPUTE_TYPES = (
    "objection.filed",
    "objection.decided",
    "objection.reconsideration_requested",
    "objection.reconsidered",
    "repair.applied",
    "repair.decided",
)
STATEMENT_TYPES = ("subject.statement_added", "subject.commitment_made")


class Right(BaseModel):
    right: str
    deadline: str
    legal_basis: str


# What a subject may do, from the legal texts (SOURCES.md §§2, 3, 5).
RIGHTS: tuple[Right, ...] = (
    Right(
        right="Read your own credit report: two reports a year are free; later ones are charged.",
        deadline="on request",
        legal_basis="State Council Order No. 631, Art. 17",
    ),
    Right(
        right="Dispute a record you think wrong: it is marked as disputed at once, verified "
        "and answered in writing.",
        deadline="verified within 20 days",
        legal_basis="State Council Order No. 631, Art. 25",
    ),
    Right(
        right="Add a statement to a record; negative information is deleted 5 years after "
        "the conduct or event ends.",
        deadline="5 years from the end of the conduct",
        legal_basis="State Council Order No. 631, Art. 16",
    ),
    Right(
        right="Know who read your report: no lender reads it without your written consent "
        "and a stated purpose, and never for another purpose.",
        deadline="every query is listed below",
        legal_basis="State Council Order No. 631, Arts. 18, 20",
    ),
    Right(
        right="Object to a listing as a dishonest judgment debtor (should not be listed, "
        "inaccurate, should have been deleted); ask the next higher court to reconsider.",
        deadline="reviewed within 15 days; corrected within 3 working days if upheld; "
        "reconsideration applied for within 10 days, decided within 15 days",
        legal_basis="Fa Shi [2017] No. 7, Arts. 11-12",
    ),
    Right(
        right="Apply for credit repair of administrative-penalty information once the "
        "minimum publication period has passed, the obligation is performed and a public "
        "credit commitment made.",
        deadline="publication stops at the latest at its maximum period",
        legal_basis="NDRC Order No. 36, Measures for Credit Repair",
    ),
    Right(
        right="Withdraw your consent to a scoring system: it then computes no score for you.",
        deadline="from the withdrawal",
        legal_basis="State Council Order No. 631, Art. 13",
    ),
)


class SubjectReport(BaseModel):
    subject_id: str
    subject_kind: str
    name: str | None
    age: int | None
    at: str
    generated_at: str
    systems: list[dict[str, Any]]
    withheld: list[dict[str, str]] = Field(default_factory=list)
    disputes: list[dict[str, Any]] = Field(default_factory=list)
    statements: list[dict[str, Any]] = Field(default_factory=list)
    inquiries: list[dict[str, Any]] = Field(default_factory=list)
    access_log: list[dict[str, Any]] = Field(default_factory=list)
    charged: bool | None = Field(
        default=None, description="for the subject's own report: whether this one is charged"
    )
    rights: list[Right] = Field(default_factory=lambda: list(RIGHTS))


def _records(store: Store, subject_id: str, types: tuple[str, ...], at: datetime) -> list[dict]:
    rows = store.sql.execute(
        "SELECT record_id, type, occurred_at, source, attributes FROM records "
        "WHERE subject_id = ? AND list_contains(?, type) AND occurred_at <= ? "
        "ORDER BY occurred_at, record_id",
        [subject_id, list(types), at],
    ).fetchall()
    return [
        {
            "record_id": rid,
            "type": typ,
            "occurred_at": to_local_iso(occ),
            "source": src,
            "attributes": json.loads(attrs),
        }
        for rid, typ, occ, src, attrs in rows
    ]


def _name(store: Store, subject_id: str, at: datetime) -> str | None:
    row = store.sql.execute(
        f"SELECT {attribute_column('name')} FROM records WHERE subject_id = ? "
        "AND type = 'registry.name' AND occurred_at <= ? ORDER BY occurred_at DESC LIMIT 1",
        [subject_id, at],
    ).fetchone()
    return row[0] if row else None


def build_report(
    store: Store,
    explanation: Any,
    *,
    withheld: list[dict[str, str]],
    access_log: list[AuditEntry],
    charged: bool | None,
) -> SubjectReport:
    at = parse_instant(explanation.at)
    sid = explanation.subject_id
    inquiries = [
        {
            "at": r["occurred_at"],
            "requester": r["attributes"].get("requester"),
            "purpose": r["attributes"].get("purpose"),
        }
        for r in _records(store, sid, ("inquiry.made",), at)
    ]
    return SubjectReport(
        subject_id=sid,
        subject_kind=explanation.subject_kind,
        name=_name(store, sid, at),
        age=explanation.age,
        at=explanation.at,
        generated_at=to_local_iso(now_utc()) or "",
        systems=[s.model_dump() for s in explanation.systems],
        withheld=withheld,
        disputes=_records(store, sid, DISPUTE_TYPES, at),
        statements=_records(store, sid, STATEMENT_TYPES, at),
        inquiries=inquiries,
        access_log=[
            {
                "at": e.at,
                "who": e.principal,
                "role": e.role,
                "action": e.action,
                "purpose": e.purpose,
            }
            for e in access_log
        ],
        charged=charged,
    )


def _env() -> Environment:
    return Environment(
        loader=PackageLoader("xinyong.reports", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(report: SubjectReport) -> str:
    return _env().get_template("subject_report.html.j2").render(r=report)


def write_report(report: SubjectReport, path: str | Path, fmt: str) -> Path:
    """Write the report as json, html or pdf; the file appears whole or not at all."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    if fmt == "json":
        tmp.write_text(
            json.dumps(report.model_dump(), ensure_ascii=False, indent=2, default=str) + "\n",
            encoding="utf-8",
        )
    elif fmt == "html":
        tmp.write_text(render_html(report), encoding="utf-8")
    elif fmt == "pdf":
        from weasyprint import HTML

        HTML(string=render_html(report)).write_pdf(tmp)
    else:
        raise ValueError(f"--format {fmt!r}: one of json, html, pdf")
    tmp.replace(out)
    return out
