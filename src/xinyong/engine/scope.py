"""What one evaluation may read: the ledger as known at ``known_at``, as of ``as_of``.

Every function here builds Ibis expressions only (no SQL text, no backend-only
functions), so the same evaluation compiles for DuckDB, PostgreSQL and Spark.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

import ibis
import ibis.expr.types as ir

from xinyong.catalog import load_catalog
from xinyong.catalog.vocabulary import REVOKED, attribute_column
from xinyong.packs.expressions import Condition, Resolver, parse, to_ibis
from xinyong.packs.schema import Pack
from xinyong.timeutil import local_date

CONSENT_GRANTED = "subject.consent_granted"
CONSENT_WITHDRAWN = "subject.consent_withdrawn"


@dataclass(frozen=True)
class Ledger:
    """The records an evaluation reads.

    ``records``: recorded at or before ``known_at`` and occurred at or before
    ``as_of`` (restricted to ``subjects`` when given); ``revocations``: one row
    per revoked record (target_record_id, revoked_at, revoking_record_id), the
    earliest known revocation that occurred at or before ``as_of``.
    """

    store: Any
    records: ir.Table
    revocations: ir.Table
    as_of: datetime
    known_at: datetime
    subjects: tuple[str, ...] | None
    #: Timeline mode (engine/timeline.py): the record tables carry a column ``_at``,
    #: the instant each row is evaluated at, instead of the one ``as_of``.
    timeline: bool = False
    #: Temporary tables holding parts of this ledger (engine/staging.py).
    staged: list[str] = field(default_factory=list, compare=False)


#: The column of the evaluation instant in timeline mode.
AT = "_at"


def subject_keys(led: Ledger) -> list[str]:
    """What a subject aggregate groups by: the subject (and the instant, on a timeline)."""
    return ["subject_id", AT] if led.timeline else ["subject_id"]


def now(led: Ledger, t: ir.Table) -> Any:
    """The instant a row of ``t`` is evaluated at: ``as_of`` (a literal), or the row's
    ``_at`` column on a timeline."""
    return t[AT] if led.timeline else led.as_of


def days_before(instant: Any, days: int) -> Any:
    """``instant`` minus ``days`` days of 24 hours (a literal stays a literal)."""
    if isinstance(instant, datetime):
        return instant - timedelta(days=days)
    return instant - ibis.interval(days=days)


def open_ledger(
    store: Any, as_of: datetime, known_at: datetime, subjects: Iterable[str] | None = None
) -> Ledger:
    raw = store.table("records")
    known = raw.filter(raw.recorded_at <= known_at, raw.occurred_at <= as_of)
    wanted: tuple[str, ...] | None = None
    records = known
    if subjects is not None:
        wanted = tuple(dict.fromkeys(subjects))
        reach = set(wanted) | _represented(known, wanted)
        records = known.filter(known.subject_id.isin(sorted(reach)))
    # Revocations are registry-level: they apply whoever's subject they name.
    return Ledger(store, records, revocations(known), as_of, known_at, wanted)


def revocations(known: ir.Table) -> ir.Table:
    """``Ledger.revocations`` from the known records (those of type record.revoked)."""
    rev = known.filter(known.type == REVOKED).select(
        target_record_id=known[attribute_column("target_record_id")],
        revoked_at=known.occurred_at,
        revoking_record_id=known.record_id,
    )
    return first_per_group(rev, ["target_record_id"], ["revoked_at", "revoking_record_id"])


def instant_value(instant: Any) -> ir.Value:
    """An instant as an Ibis value: a literal for a datetime, else the expression
    itself (a parameter, or a timeline's ``_at`` column)."""
    return ibis.literal(instant) if isinstance(instant, datetime) else instant


def _represented(known: ir.Table, persons: tuple[str, ...]) -> set[str]:
    """Organizations that named one of ``persons`` on a record of theirs (any time):
    as legal representative, or as the person a court transferred a restriction to
    (``court.restriction_transferred``, engine/transfers.py); results reach the
    person along either."""
    if not persons:
        return set()
    rel = load_catalog().relations["legal_representative"]
    col = known[attribute_column(rel.attribute)]
    orgs = known.filter(col.isin(list(persons)))
    return {str(x) for x in orgs.select("subject_id").distinct().to_pyarrow()["subject_id"]}


def union_all(tables: list[ir.Table]) -> ir.Table | None:
    """The rows of all tables (same columns), or None when there are none."""
    if not tables:
        return None
    out = tables[0]
    for t in tables[1:]:
        out = out.union(t, distinct=False)
    return out


def first_per_group(t: ir.Table, keys: list[str], order: list[str]) -> ir.Table:
    """The first row of each group in ``order`` (used on small derived tables only)."""
    w = ibis.window(group_by=[t[k] for k in keys], order_by=[t[c] for c in order])
    return t.mutate(_rn=ibis.row_number().over(w)).filter(lambda x: x._rn == 0).drop("_rn")


def in_scope(pack: Pack, t: ir.Table) -> ir.Table:
    return t.filter(
        t.type.isin(list(pack.scope.record_types)),
        t.source_kind.isin(list(pack.scope.source_kinds)),
    )


def not_revoked(led: Ledger, t: ir.Table) -> ir.Table:
    return t.anti_join(led.revocations, t.record_id == led.revocations.target_record_id)


def attr(t: ir.Table, name: str) -> ir.Value:
    col = attribute_column(name)
    if col in t.columns:
        return t[col]
    return ibis.null()


def age_at_instant(birth: ir.Value, instant: Any) -> ir.Value:
    """Full years on the Shanghai date of a fixed instant (NULL without a birth date);
    ``instant`` may also be a column (a timeline's ``_at``)."""
    if not isinstance(instant, datetime):
        return age_at_column(birth, instant)
    d = local_date(instant)
    later = (birth.month() * 100 + birth.day()) > (d.month * 100 + d.day)
    return ibis.literal(d.year) - birth.year() - ibis.cases((later, 1), else_=0)


def age_at_column(birth: ir.Value, ts: ir.Value) -> ir.Value:
    """Full years on the Shanghai date of each row's instant ``ts``."""
    local = ts + ibis.interval(hours=8)
    later = (birth.month() * 100 + birth.day()) > (local.month() * 100 + local.day())
    return local.year() - birth.year() - ibis.cases((later, 1), else_=0)


LOCAL = ibis.interval(hours=8)  # Asia/Shanghai, no DST since 1991 (timeutil.SHANGHAI)


def add_local(ts: ir.Value, interval: Any) -> ir.Value:
    """A naive-UTC instant plus a calendar interval counted on the Asia/Shanghai
    calendar (years and months land on the local date, not the UTC one)."""
    return ts + LOCAL + interval - LOCAL


def local_day(ts: ir.Value) -> ir.Value:
    """00:00 Asia/Shanghai of the local date of each instant, as a naive local timestamp."""
    return (ts + LOCAL).truncate("D")


@cache
def _non_working_days() -> ir.Table:
    from xinyong.calendar import non_working_days

    rows = non_working_days(date(CALENDAR_YEARS[0], 1, 1), date(CALENDAR_YEARS[1], 12, 31))
    return ibis.memtable(
        {
            "_hday": [datetime(d.year, d.month, d.day) for d, _ in rows],
            "_hnext": [datetime(n.year, n.month, n.day) for _, n in rows],
        },
        schema={"_hday": "timestamp", "_hnext": "timestamp"},
    )


# The years of the engine's working-day table (xinyong.calendar, its fallback beyond
# the published years included). A period ending outside them is not moved to a
# working day by the engine (the reference evaluator would move it); intake dates
# lie well inside.
CALENDAR_YEARS = (1990, 2099)


def with_period_end(t: ir.Table, ts: ir.Value, days: ir.Value, name: str) -> ir.Table:
    """``t`` plus column ``name``: the instant a period of ``days`` days that starts at
    ``ts`` is over (Civil Procedure Law Art. 85, as in ``xinyong.calendar.add_days``):
    00:00 local after its last day, the last day being moved to the next working
    day. A period of 0 days is over at ``ts`` itself."""
    t = t.mutate(_plast=local_day(ts) + days.as_interval("D"), _pdays=days, _pts=ts)
    cal = _non_working_days()
    j = t.left_join(cal, t._plast == cal._hday)
    end = j._hnext.fill_null(j._plast) + ibis.interval(days=1) - LOCAL
    j = j.mutate(**{name: ibis.cases((j._pdays > 0, end), else_=j._pts)})
    return j.drop("_plast", "_pdays", "_pts", "_hday", "_hnext")


def boundary(t: ir.Table, what: str) -> ir.Table:
    """``t`` as a named subquery (a CTE): later expressions refer to its columns instead
    of repeating the computation behind them, which Ibis otherwise inlines at every
    use (multiplying the SQL text, and its compile time, with each self-join).

    The name comes from the expression's structural hash: the same expression gets
    the same name (one CTE, and a stable plan), two different ones never share it.
    """
    return t.alias(f"_{what}_{hash(t.op()) & 0xFFFFFFFFFFFF:012x}")


def record_resolver(t: ir.Table) -> Resolver:
    """Condition names on a record: attributes, subject.age at occurrence, subject.kind."""

    def resolve(name: str) -> ir.Value:
        if name == "subject.age":
            return age_at_column(t.birth_date, t.occurred_at)
        if name == "subject.kind":
            return t.subject_kind
        return attr(t, name)

    return resolve


def condition(text: str | None, t: ir.Table) -> ir.BooleanValue | None:
    """A pack condition on the rows of ``t``; NULL counts as not holding."""
    if text is None:
        return None
    cond: Condition = parse(text)
    return to_ibis(cond, record_resolver(t)).fill_null(False)


def both(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return a & b
