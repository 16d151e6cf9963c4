"""Evaluation: scores and grades, list entries and consequences, as of an instant.

One relational query per pack, built with Ibis (no SQL text), so the same
evaluation runs on DuckDB, PostgreSQL and Spark. ``xinyong.engine.reference``
is the plain-Python statement of the same semantics, used by the tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xinyong.engine.evaluation import (
        Evaluation,
        evaluate,
        feature_table,
        materialize,
        visible_records,
    )

__all__ = ["Evaluation", "evaluate", "feature_table", "materialize", "visible_records"]


def __getattr__(name: str) -> Any:
    # Imported on first use: engine/compiled.py runs a stored plan without Ibis, and
    # importing this package must not load it (a check process never needs it).
    if name in __all__:
        from xinyong.engine import evaluation

        return getattr(evaluation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
