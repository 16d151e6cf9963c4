"""Summary statistics over a registry: what an operator watches.

Every figure is a parameterized query over the store's tables (the latest
materialized evaluation for scores, list entries and consequences).
"""

from __future__ import annotations

from calendar import monthrange
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from xinyong.ledger.store import Store
from xinyong.timeutil import to_local_iso

# A listing ended "by performance" when the debtor did what the judgment asked.
PERFORMANCE_TYPES = ("court.obligation_fulfilled", "court.settlement_performed")


@dataclass
class Summary:
    as_of: str | None
    known_at: str | None
    records: int
    subjects: dict[str, int]
    records_by_type: dict[str, int]
    batches: int
    list_sizes: list[dict[str, Any]]  # {system, list_id, at (date), active}
    grades: list[dict[str, Any]]  # {system, grade, subjects}
    unscored: dict[str, int]  # system -> persons without a score (no consent, minors...)
    refused: list[dict[str, Any]]  # {service, subjects, systems}
    endings: list[dict[str, Any]]  # {system, list_id, ending, entries}
    active_entries: dict[str, int]
    minors_listed: int
    objections: dict[str, int] = field(default_factory=dict)  # filed, open, overdue, ...
    lint: list[dict[str, str]] = field(default_factory=list)  # {system, level, rule_id, message}
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def performance_vs_term(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for row in self.endings:
            totals[row["ending"]] = totals.get(row["ending"], 0) + row["entries"]
        return totals


def _rows(store: Store, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    return store.sql.execute(sql, params or []).fetchall()


def list_sizes(store: Store, start: date, end: date, months: int = 3) -> list[dict[str, Any]]:
    """Active list entries at the start of every ``months``-th month, per list."""
    from xinyong.ledger.store import registered

    points: list[datetime] = []
    last, k = datetime(end.year, end.month, end.day), 0
    while True:  # start + k * months, the day clamped to the month's end (as SQL does)
        month = start.month - 1 + k * months
        year, month = start.year + month // 12, month % 12 + 1
        at = datetime(year, month, min(start.day, monthrange(year, month)[1]))
        if at > last:
            break
        points.append(at)
        k += 1
    # the instants as a registered table: the same SQL on DuckDB and PostgreSQL
    with registered(store.sql, _xin_points=pa.table({"at": pa.array(points, pa.timestamp("us"))})):
        rows = _rows(
            store,
            """
            WITH lists AS (SELECT DISTINCT system, list_id FROM list_entries)
            SELECT l.system, l.list_id, CAST(p.at AS DATE),
                   (SELECT count(*) FROM list_entries e
                     WHERE e.system = l.system AND e.list_id = l.list_id
                       AND e.start_at <= p.at AND (e.end_at IS NULL OR e.end_at > p.at))
            FROM _xin_points p, lists l ORDER BY 1, 2, 3
            """,
        )
    return [{"system": s, "list_id": li, "at": a.isoformat(), "active": n} for s, li, a, n in rows]


def grade_distribution(store: Store) -> list[dict[str, Any]]:
    rows = _rows(
        store,
        "SELECT system, coalesce(grade, '(none)'), count(*), min(score) FROM scores "
        "GROUP BY 1, 2 ORDER BY 1, 4 DESC NULLS LAST",
    )
    return [{"system": s, "grade": g, "subjects": n} for s, g, n, _ in rows]


def unscored_persons(store: Store) -> dict[str, int]:
    """Persons with records but no score, per scored system (no consent, minors, no scope)."""
    rows = _rows(
        store,
        """
        WITH persons AS (SELECT count(DISTINCT subject_id) AS n FROM records
                         WHERE subject_kind = 'person'),
             scored AS (SELECT s.system, count(*) AS n FROM scores s
                        JOIN (SELECT DISTINCT subject_id FROM records
                              WHERE subject_kind = 'person') p USING (subject_id)
                        GROUP BY 1)
        SELECT scored.system, persons.n - scored.n FROM scored, persons ORDER BY 1
        """,
    )
    return {s: int(n) for s, n in rows}


def refused_checks(store: Store, at: datetime) -> list[dict[str, Any]]:
    """Per service, the subjects a check at ``at`` would refuse (an active deny)."""
    rows = _rows(
        store,
        """
        SELECT service, count(DISTINCT subject_id), string_agg(DISTINCT system, ', ')
        FROM consequences
        WHERE effect = 'deny' AND since <= ? AND (until IS NULL OR until > ?)
        GROUP BY 1 ORDER BY 2 DESC, 1
        """,
        [at, at],
    )
    return [{"service": s, "subjects": n, "systems": sy} for s, n, sy in rows]


def entry_endings(store: Store) -> list[dict[str, Any]]:
    """How list entries ended: by performance, by another removal record (named by
    its type), by term, revoked, superseded, by retention, or still open."""
    rows = _rows(
        store,
        """
        SELECT e.system, e.list_id,
               CASE WHEN e.end_reason IS NULL THEN 'still listed'
                    WHEN e.end_reason = 'removal' AND r.type IN (?, ?) THEN 'performance'
                    WHEN e.end_reason = 'removal' THEN coalesce(r.type, 'removal')
                    ELSE e.end_reason END AS ending,
               count(*)
        FROM list_entries e
        LEFT JOIN records r ON r.record_id = e.ending_record_id
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 4 DESC, 3
        """,
        list(PERFORMANCE_TYPES),
    )
    return [{"system": s, "list_id": li, "ending": k, "entries": n} for s, li, k, n in rows]


def summarize(store: Store, start: date, end: date) -> Summary:
    """Every figure of the operator's summary, at the latest materialized run."""
    run = store.sql.execute(
        "SELECT as_of, known_at FROM eval_runs ORDER BY run_id DESC LIMIT 1"
    ).fetchone()
    as_of = run[0] if run else datetime.combine(end, datetime.min.time())
    by_type = dict(_rows(store, "SELECT type, count(*) FROM records GROUP BY 1 ORDER BY 2 DESC"))
    subjects = dict(
        _rows(store, "SELECT subject_kind, count(DISTINCT subject_id) FROM records GROUP BY 1")
    )
    batches = _rows(store, "SELECT count(*) FROM batches")[0][0]
    active = dict(
        _rows(
            store,
            "SELECT system || '/' || list_id, count(*) FROM list_entries "
            "WHERE start_at <= ? AND (end_at IS NULL OR end_at > ?) GROUP BY 1 ORDER BY 1",
            [as_of, as_of],
        )
    )
    minors = _rows(
        store,
        """
        SELECT count(*) FROM list_entries e JOIN
          (SELECT DISTINCT subject_id, birth_date FROM records WHERE birth_date IS NOT NULL) p
          USING (subject_id)
        WHERE e.start_at < p.birth_date + INTERVAL 18 YEAR
        """,
    )[0][0]
    from xinyong.process.objections import statistics as objection_statistics

    return Summary(
        objections=objection_statistics(store, as_of),
        as_of=to_local_iso(as_of),
        known_at=to_local_iso(run[1]) if run else None,
        records=sum(by_type.values()),
        subjects={k: int(v) for k, v in subjects.items()},
        records_by_type={k: int(v) for k, v in by_type.items()},
        batches=int(batches),
        list_sizes=list_sizes(store, start, end),
        grades=grade_distribution(store),
        unscored=unscored_persons(store),
        refused=refused_checks(store, as_of),
        endings=entry_endings(store),
        active_entries={k: int(v) for k, v in active.items()},
        minors_listed=int(minors),
    )


def lint_findings(packs: list[Any]) -> list[dict[str, str]]:
    """The linter's findings on the given packs (warnings and errors)."""
    from xinyong.packs.lint import lint

    out = []
    for pack in packs:
        for f in lint(pack):
            out.append(
                {
                    "system": pack.system,
                    "level": f.level,
                    "rule_id": f.rule_id,
                    "message": f.message,
                }
            )
    return out
