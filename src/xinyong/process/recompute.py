"""Recompute the materialized results of a few subjects after a correction.

The one place a due-process decision refreshes derived results (so that a change of
how results are materialized is merged here only): the subjects, and the persons
their results reach along legal-role relations, are evaluated again with the
latest run's ``as_of`` and everything known now (as timelines when the run
materialized timelines), and their rows in ``scores``, ``score_timeline``,
``list_entries`` and ``consequences`` are replaced in one transaction; no full
evaluation. When the run was current before the decision's batch, it stays current
(its ``last_batch`` moves to include that batch); otherwise it stays stale and checks
replay per subject as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from xinyong.catalog.vocabulary import attribute_column
from xinyong.checks.index import latest_run
from xinyong.ledger.store import Store
from xinyong.timeutil import now_utc

_TABLES = ("scores", "score_timeline", "list_entries", "consequences")


def related_subjects(store: Store, subjects: Iterable[str]) -> list[str]:
    """The subjects and every person named on them as legal representative or as the
    person a restriction was transferred to (results of those persons rest on them)."""
    wanted = list(dict.fromkeys(subjects))
    col = attribute_column("person_id")
    marks = ", ".join("?" for _ in wanted)
    rows = store.sql.execute(
        f"SELECT DISTINCT {col} FROM records WHERE subject_id IN ({marks}) AND {col} IS NOT NULL",
        wanted,
    ).fetchall()
    return list(dict.fromkeys([*wanted, *(str(r[0]) for r in rows)]))


def recompute_subjects(
    store: Store, subjects: Iterable[str], *, was_current: bool = False, batch_id: Any = None
) -> list[str]:
    """Replace the materialized rows of ``subjects`` (and their relations); the subjects
    recomputed (none when nothing was ever materialized: checks then replay)."""
    from xinyong.engine import evaluate
    from xinyong.packs import installed_packs

    run = latest_run(store)
    if run is None:
        return []
    related = related_subjects(store, subjects)
    evaluation = evaluate(
        store,
        installed_packs(store, run.as_of),
        as_of=run.as_of,
        known_at=now_utc(),
        subjects=related,
        timeline=bool(run.timeline),
    )
    line = evaluation.score_timeline
    frames = {
        "scores": evaluation.scores.to_pyarrow(),
        "score_timeline": None if line is None else line.to_pyarrow(),
        "list_entries": evaluation.list_entries.to_pyarrow(),
        "consequences": evaluation.consequences.to_pyarrow(),
    }
    marks = ", ".join("?" for _ in related)
    store.sql.begin()
    try:
        for table in _TABLES:
            store.sql.execute(f"DELETE FROM {table} WHERE subject_id IN ({marks})", related)
            frame = frames[table]
            if frame is not None and frame.num_rows:
                store.sql.register("_xin_recompute", frame)
                cols = ", ".join(frame.column_names)
                store.sql.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _xin_recompute")
                store.sql.unregister("_xin_recompute")
        if was_current and batch_id is not None:
            store.sql.execute(
                "UPDATE eval_runs SET last_batch = ? WHERE run_id = ?", [batch_id, run.run_id]
            )
    except BaseException:
        store.sql.rollback()
        raise
    store.sql.commit()
    return related
