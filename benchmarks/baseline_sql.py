"""The baseline: the Rongcheng scores as one hand-written DuckDB SQL query.

This is what a developer would write for DuckDB alone, with the pack's rule
values passed in as a registered table (never spliced into the SQL text). The
benchmark checks that it returns the same scores as the engine and reports the
engine's time as a multiple of this query's.

Hand-coded for the Rongcheng pack's shape: persons, consent, minimum age,
conduct at 18 or older, windows, most-recent-N caps, the monthly-cycle
multiplier of loan arrears, a retention period and revocations.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa

from xinyong.packs.schema import Pack

SQL = """
WITH known AS (
    SELECT * FROM records WHERE recorded_at <= $known_at AND occurred_at <= $as_of
),
revoked AS (
    SELECT DISTINCT attr_target_record_id AS record_id FROM known WHERE type = 'record.revoked'
),
visible AS (
    SELECT k.* FROM known k
    WHERE k.type IN (SELECT type FROM bench_scope_types)
      AND k.source_kind IN (SELECT kind FROM bench_scope_kinds)
      AND NOT EXISTS (SELECT 1 FROM revoked r WHERE r.record_id = k.record_id)
      AND (k.type NOT IN (SELECT type FROM bench_retention)
           OR k.occurred_at + to_years(CAST($retention_years AS INTEGER)) > $as_of)
),
population AS (
    SELECT subject_id, max(subject_kind) AS kind, max(birth_date) AS birth,
        max(occurred_at) FILTER (WHERE type = 'subject.consent_granted'
                                 AND attr_system = $system) AS granted,
        max(occurred_at) FILTER (WHERE type = 'subject.consent_withdrawn'
                                 AND attr_system = $system) AS withdrawn
    FROM visible GROUP BY subject_id
),
scored AS (
    SELECT subject_id FROM population,
        (SELECT CAST($as_of + INTERVAL 8 HOUR AS DATE) AS d) AS today
    WHERE kind = 'person'
      AND year(today.d) - year(birth)
          - CASE WHEN month(birth) * 100 + day(birth) > month(today.d) * 100 + day(today.d)
                 THEN 1 ELSE 0 END >= $min_age
      AND granted IS NOT NULL AND (withdrawn IS NULL OR granted > withdrawn)
),
hits AS (
    SELECT v.subject_id, r.max_count,
        r.points * CASE WHEN r.multiplied THEN ceil(v.attr_days_past_due / 30) ELSE 1 END AS points,
        row_number() OVER (PARTITION BY v.subject_id, r.rule
                           ORDER BY v.occurred_at DESC, v.record_id DESC) AS recency
    FROM visible v JOIN bench_rules r ON v.type = r.type
    WHERE (r.window_days IS NULL OR v.occurred_at >= $as_of - to_days(r.window_days))
      AND year(CAST(v.occurred_at + INTERVAL 8 HOUR AS DATE)) - year(v.birth_date)
          - CASE WHEN month(v.birth_date) * 100 + day(v.birth_date)
                      > month(CAST(v.occurred_at + INTERVAL 8 HOUR AS DATE)) * 100
                        + day(CAST(v.occurred_at + INTERVAL 8 HOUR AS DATE))
                 THEN 1 ELSE 0 END >= 18
)
SELECT s.subject_id,
    $base + coalesce(sum(h.points) FILTER (WHERE h.max_count IS NULL
                                         OR h.recency <= h.max_count), 0) AS score
FROM scored s LEFT JOIN hits h USING (subject_id)
GROUP BY s.subject_id
"""


def rongcheng_scores_sql(pack: Pack, as_of: datetime, store: Any) -> tuple[str, dict[str, Any]]:
    score = pack.score
    assert score is not None and pack.retention
    for rule in score.rules:
        # the shape this hand-written query assumes; fail loudly if the pack moves on
        assert rule.when in (None, "subject.age >= 18"), rule.when
        assert rule.multiplier in (None, "ceil(days_past_due / 30)"), rule.multiplier
        assert rule.cap_points is None and rule.applies_from is None
    rules = pa.table(
        {
            "rule": [r.id for r in score.rules],
            "type": [r.type for r in score.rules],
            "points": [float(r.points) for r in score.rules],
            "multiplied": [r.multiplier is not None for r in score.rules],
            "window_days": pa.array([r.window_days for r in score.rules], pa.int64()),
            "max_count": pa.array([r.max_count for r in score.rules], pa.int64()),
        }
    )
    (retention,) = pack.retention
    store.sql.register("bench_rules", rules)
    store.sql.register("bench_scope_types", pa.table({"type": pack.scope.record_types}))
    store.sql.register("bench_scope_kinds", pa.table({"kind": pack.scope.source_kinds}))
    store.sql.register("bench_retention", pa.table({"type": retention.types}))
    params = {
        "as_of": as_of,
        "known_at": datetime.now(),
        "system": pack.system,
        "min_age": score.min_age,
        "base": float(score.base),
        "retention_years": retention.years,
    }
    return SQL, params
