"""evaluate(), materialize() and the table functions other modules build on."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from xinyong.engine.consequences import COLUMNS as CONSEQUENCE_COLUMNS
from xinyong.engine.consequences import consequences
from xinyong.engine.explain import CONTRIBUTION_COLUMNS, REASON_COLUMNS, contributions, reasons
from xinyong.engine.lists import list_entries
from xinyong.engine.retention import visible
from xinyong.engine.scope import Ledger, open_ledger, union_all
from xinyong.engine.scores import conditions, feature_values, scores_of, subject_parts
from xinyong.engine.staging import drop, stage, stage_visible
from xinyong.engine.timeline import COLUMNS as TIMELINE_COLUMNS
from xinyong.engine.timeline import grade_periods, score_timeline
from xinyong.packs.schema import Pack
from xinyong.timeutil import now_utc, parse_instant

SCORE_COLUMNS = {"system": "string", "subject_id": "string", "score": "float64", "grade": "string"}
ENTRY_COLUMNS = {
    "system": "string",
    "list_id": "string",
    "subject_id": "string",
    "key": "string",
    "entry_record_id": "string",
    "occurred_at": "timestamp",
    "start_at": "timestamp",
    "end_at": "timestamp",
    "end_reason": "string",
    "ending_record_id": "string",
}

Instant = datetime | date | str | None


@dataclass(frozen=True)
class Evaluation:
    """Lazy Ibis tables over the store's backend; nothing is computed until used."""

    as_of: datetime
    known_at: datetime
    packs: tuple[Pack, ...]
    scores: ir.Table
    list_entries: ir.Table
    consequences: ir.Table
    contributions: ir.Table | None = None
    reasons: ir.Table | None = None
    subjects: tuple[str, ...] | None = field(default=None)
    ledger: Ledger | None = field(default=None, repr=False)
    #: With ``timeline=True``: every score and grade as valid-time intervals, and
    #: ``consequences`` / ``list_entries`` with their full known periods.
    score_timeline: ir.Table | None = None
    #: The ledger each pack read (engine/staging.py); None: nothing in its scope.
    pack_ledgers: dict[str, Ledger | None] | None = field(default=None, repr=False)


def _instant(value: Instant, default: datetime) -> datetime:
    """Python datetimes are naive UTC already (INTERFACES.md); text and dates are parsed
    as registry input (a bare date is 00:00 Asia/Shanghai)."""
    if value is None:
        return default
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)
        return value
    return parse_instant(value)


def _empty(columns: dict[str, str]) -> ir.Table:
    schema = ibis.schema(columns)
    return ibis.memtable(pa.Table.from_pylist([], schema=schema.to_pyarrow()))


def _union(tables: list[ir.Table], columns: dict[str, str]) -> ir.Table:
    if not tables:
        return _empty(columns)
    out = union_all([t.select(**{c: t[c].cast(ty) for c, ty in columns.items()}) for t in tables])
    assert out is not None
    return out


def _only(t: ir.Table, led: Ledger) -> ir.Table:
    if led.subjects is None:
        return t
    return t.filter(t.subject_id.isin(list(led.subjects)))


def pack_point(pack: Pack, led: Ledger, *, explain: bool = False) -> dict[str, list[ir.Table]]:
    """One pack's results at ``led.as_of`` (each a list of 0 or more tables to union):
    scores, list_entries, consequences, and with ``explain`` contributions and reasons.
    ``led.as_of`` may be a timestamp expression (a parameter: engine/compiled.py)."""
    out: dict[str, list[ir.Table]] = {
        "scores": [],
        "list_entries": [],
        "consequences": [],
        "contributions": [],
        "reasons": [],
    }
    vis = visible(pack, led)
    pack_scores = None
    if pack.score is not None:
        # The score conditions as columns (computed once per record, read by every
        # rule; inlined, Rongcheng's age test was 76 copies in a replay's SQL)
        vis = conditions(pack, vis) if explain else stage_visible(led, pack, vis)
        parts, spec = subject_parts(pack, led, vis)
        pack_scores = scores_of(pack, parts, spec)
        out["scores"].append(pack_scores)
        if explain:
            c = contributions(pack, led, vis, parts)
            r = reasons(pack, parts, spec)
            out["contributions"] += [c] if c is not None else []
            out["reasons"] += [r] if r is not None else []
    pack_entries = list_entries(pack, led)
    if pack_entries is not None:
        out["list_entries"].append(pack_entries)
    out["consequences"] += consequences(pack, led, pack_entries, pack_scores)
    return out


def pack_timeline(pack: Pack, led: Ledger) -> dict[str, list[ir.Table]]:
    """One pack's results at every instant (``led.timeline``): score_timeline,
    list_entries and consequences, each a list of tables to union."""
    line = score_timeline(pack, led) if pack.score is not None else None
    pack_entries = list_entries(pack, led)
    periods = grade_periods(line) if line is not None else None
    return {
        "score_timeline": [line] if line is not None else [],
        "list_entries": [pack_entries] if pack_entries is not None else [],
        "consequences": consequences(pack, led, pack_entries, periods),
    }


def evaluate(
    store: Any,
    packs: Iterable[Pack] | None = None,
    *,
    as_of: Instant = None,
    known_at: Instant = None,
    subjects: Iterable[str] | None = None,
    explain: bool = False,
    timeline: bool = False,
) -> Evaluation:
    """Scores, list entries and consequences of every pack at ``as_of``, as known at
    ``known_at`` (both default to now). ``subjects`` restricts every output to those
    subject ids (the organizations they represent are read to find consequences
    reaching them).

    ``timeline``: the results at every instant, as known at ``known_at``
    (engine/timeline.py): ``score_timeline`` holds the score intervals, ``scores``
    the scores at ``as_of`` taken from them, ``list_entries`` every entry with the
    period known at ``known_at`` (also those over by ``as_of``, also those whose
    end occurred after it), ``consequences`` every period of every consequence."""
    if timeline and explain:
        raise ValueError("explain is a point evaluation; ask for a timeline without it")
    now = now_utc()
    t_as_of = _instant(as_of, now)
    t_known = _instant(known_at, now)
    if packs is None:
        from xinyong.packs import installed_packs

        packs = installed_packs(store, t_as_of)
    chosen = tuple(packs)
    if timeline:
        return _timeline(store, chosen, t_as_of, t_known, subjects)
    led, per_pack = stage(open_ledger(store, t_as_of, t_known, subjects), chosen)
    scores, entries, cons, contribs, why = [], [], [], [], []
    for pack in chosen:
        pled = per_pack[pack.system]
        if pled is None:
            continue  # nothing in its scope
        out = pack_point(pack, pled, explain=explain)
        scores += out["scores"]
        entries += out["list_entries"]
        cons += out["consequences"]
        contribs += out["contributions"]
        why += out["reasons"]
    return Evaluation(
        as_of=t_as_of,
        known_at=t_known,
        packs=chosen,
        scores=_only(_union(scores, SCORE_COLUMNS), led),
        list_entries=_only(_union(entries, ENTRY_COLUMNS), led),
        consequences=_only(_union(cons, CONSEQUENCE_COLUMNS), led),
        contributions=_only(_union(contribs, CONTRIBUTION_COLUMNS), led) if explain else None,
        reasons=_only(_union(why, REASON_COLUMNS), led) if explain else None,
        subjects=led.subjects,
        ledger=led,
        pack_ledgers=per_pack,
    )


def _at(t: ir.Table, as_of: datetime) -> ir.Table:
    """The rows of a score timeline that hold at ``as_of``, as a scores table."""
    now = t.filter(t.valid_from <= as_of, t.valid_to.isnull() | (t.valid_to > as_of))
    return now.select("system", "subject_id", "score", "grade")


def _timeline(
    store: Any,
    packs: tuple[Pack, ...],
    as_of: datetime,
    known_at: datetime,
    subjects: Iterable[str] | None,
) -> Evaluation:
    # Every known record occurred at or before known_at (intake refuses conduct
    # recorded before it occurred), so this ledger sees all of them.
    led = replace(open_ledger(store, max(as_of, known_at), known_at, subjects), timeline=True)
    led, per_pack = stage(led, packs)
    lines, entries, cons = [], [], []
    for pack in packs:
        pled = per_pack[pack.system]
        if pled is None:
            continue  # nothing in its scope
        out = pack_timeline(pack, pled)
        lines += out["score_timeline"]
        entries += out["list_entries"]
        cons += out["consequences"]
    tl = _only(_union(lines, TIMELINE_COLUMNS), led)
    return Evaluation(
        as_of=as_of,
        known_at=known_at,
        packs=packs,
        scores=_at(tl, as_of),
        list_entries=_only(_union(entries, ENTRY_COLUMNS), led),
        consequences=_only(_union(cons, CONSEQUENCE_COLUMNS), led),
        subjects=led.subjects,
        ledger=led,
        pack_ledgers=per_pack,
        score_timeline=tl,
    )


def visible_records(
    store: Any,
    pack: Pack,
    *,
    as_of: Instant = None,
    known_at: Instant = None,
    subjects: Iterable[str] | None = None,
) -> ir.Table:
    """Records the pack's system may see and show at ``as_of`` (in scope, known, not
    revoked, within retention), with a ``retention_end`` column (NULL: kept)."""
    now = now_utc()
    led = open_ledger(store, _instant(as_of, now), _instant(known_at, now), subjects)
    return _only(visible(pack, led), led)


def feature_table(
    store: Any, pack: Pack, as_of: Instant = None, known_at: Instant = None
) -> ir.Table:
    """subject_id plus one column per feature of the pack, for the subjects the pack
    would score at ``as_of`` (consent, age and kind apply): the trainer's input."""
    if pack.score is None:
        raise ValueError(f"pack {pack.system} has no score section")
    now = now_utc()
    led = open_ledger(store, _instant(as_of, now), _instant(known_at, now))
    return feature_values(pack, led, visible(pack, led))


def _from_materialized(store: Any, evaluation: Evaluation) -> ir.Table:
    if evaluation.ledger is None:
        return evaluation.consequences
    entries, scores = store.table("list_entries"), store.table("scores")
    if evaluation.ledger.timeline:
        scores = grade_periods(store.table("score_timeline"))
    parts = []
    ledgers = evaluation.pack_ledgers or {}
    for pack in evaluation.packs:
        led = ledgers.get(pack.system, evaluation.ledger)
        if led is None:
            continue  # nothing in its scope: no entries, no scores
        parts += consequences(
            pack,
            led,
            entries.filter(entries.system == pack.system) if pack.lists else None,
            scores.filter(scores.system == pack.system) if pack.score is not None else None,
        )
    return _union(parts, CONSEQUENCE_COLUMNS)


@contextmanager
def _transaction(store: Any) -> Iterator[None]:
    # The one backend-specific piece: DB-API style begin/commit on the connection.
    store.sql.begin()
    try:
        yield
    except BaseException:
        store.sql.rollback()
        raise
    store.sql.commit()


def materialize(store: Any, evaluation: Evaluation) -> int:
    """Replace scores, list_entries and consequences with the evaluation's rows and
    record the run (a full one: engine/incremental.py); all in one transaction,
    computed inside the backend."""
    if evaluation.subjects is not None:
        raise ValueError("materialize a whole evaluation, not one restricted to subjects")
    from xinyong.engine.incremental import record_run

    timeline = evaluation.score_timeline is not None

    def insert(table: str, rows: Any) -> None:
        # In subject order: a lookup of one subject's rows (explain's consequences, a
        # score at an instant) then skips the row groups that cannot hold it, as in a
        # compacted ledger (ledger/compaction.py), instead of reading the whole table.
        store.ibis.insert(table, rows.order_by("subject_id"), overwrite=True)

    with _transaction(store):
        if evaluation.score_timeline is not None:
            # Computed once: the scores at as_of are read back from the timeline.
            insert("score_timeline", evaluation.score_timeline)
            line = store.table("score_timeline")
            insert("scores", _at(line, evaluation.as_of))
        else:
            store.ibis.truncate_table("score_timeline")
            insert("scores", evaluation.scores)
        insert("list_entries", evaluation.list_entries)
        # Consequences follow from the entries and scores just written: reading those
        # back keeps the query small instead of deriving them a second time.
        insert("consequences", _from_materialized(store, evaluation))
        row = store.sql.execute(
            "SELECT count(DISTINCT subject_id) FROM records WHERE recorded_at <= ?",
            [evaluation.known_at],
        ).fetchone()
        run_id = record_run(
            store,
            as_of=evaluation.as_of,
            known_at=evaluation.known_at,
            timeline=timeline,
            mode="full",
            recomputed=int(row[0]) if row else 0,
        )
    drop(store, evaluation.ledger)
    return run_id
