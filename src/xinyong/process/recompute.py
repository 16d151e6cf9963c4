"""Recompute the materialized results of a few subjects after a correction.

A due-process decision refreshes derived results through the one way to recompute a
set of subjects, ``engine.incremental`` (which incremental evaluation uses too): the
subjects, and the persons their results reach along legal-role relations
(``related_subjects``), are evaluated again with the latest run's ``as_of`` and
everything known now (as timelines when the run materialized timelines), and their
rows in ``scores``, ``score_timeline``, ``list_entries`` and ``consequences`` are
replaced in one transaction; no full evaluation. When the run was current before the
decision's batch, it stays current (its ``last_batch`` moves to include that batch);
otherwise it stays stale and checks replay per subject as before (the next
``evaluate`` recomputes those subjects again).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from xinyong.checks.index import latest_run
from xinyong.engine.incremental import related_subjects
from xinyong.ledger.store import Store
from xinyong.timeutil import now_utc

__all__ = ["recompute_subjects", "related_subjects"]


def recompute_subjects(
    store: Store, subjects: Iterable[str], *, was_current: bool = False, batch_id: Any = None
) -> list[str]:
    """Replace the materialized rows of ``subjects`` (and their relations); the subjects
    recomputed (none when nothing was ever materialized: checks then replay)."""
    from xinyong.engine.incremental import recompute
    from xinyong.packs import installed_packs

    run = latest_run(store)
    if run is None:
        return []
    related = related_subjects(store, subjects)

    def keep_current() -> None:
        if was_current and batch_id is not None:
            store.sql.execute(
                "UPDATE eval_runs SET last_batch = ? WHERE run_id = ?", [batch_id, run.run_id]
            )

    recompute(
        store,
        related,
        as_of=run.as_of,
        known_at=now_utc(),
        timeline=bool(run.timeline),
        packs=installed_packs(store, run.as_of),
        then=keep_current,
    )
    return related
