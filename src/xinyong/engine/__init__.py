"""Evaluation: scores and grades, list entries and consequences, as of an instant.

One relational query per pack, built with Ibis (no SQL text), so the same
evaluation runs on DuckDB, PostgreSQL and Spark. ``xinyong.engine.reference``
is the plain-Python statement of the same semantics, used by the tests.
"""

from xinyong.engine.evaluation import (
    Evaluation,
    evaluate,
    feature_table,
    materialize,
    visible_records,
)

__all__ = ["Evaluation", "evaluate", "feature_table", "materialize", "visible_records"]
