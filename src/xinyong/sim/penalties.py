"""Administrative penalties for the synthetic city (``xinyong demo``), so that the
``admin_penalty`` pack and credit repair have something to publish.

Separate from the yearly city generation (and its random stream) so that adding them
changes none of the city's other records: a few organizations, chosen by a seeded
``random.Random``, get one penalty each after NDRC Order No. 36 came into force
(2026-04-01): severity minor, ordinary or serious (1 : 2 : 1, illustrative), from the
market regulator; about two in three are performed within 60 days.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from xinyong.ledger.intake import submit
from xinyong.ledger.store import Store
from xinyong.sim.behaviour import MARKET_REGULATOR

IN_FORCE = datetime(2026, 3, 31, 16, 0)  # 2026-04-01 00:00 Asia/Shanghai, naive UTC
SEVERITIES = ("minor", "ordinary", "ordinary", "serious")


def penalty_records(organizations: list[str], until: datetime, seed: int) -> list[dict[str, Any]]:
    if until <= IN_FORCE or not organizations:
        return []
    rng = random.Random(seed)
    span = (until - IN_FORCE).total_seconds()
    out: list[dict[str, Any]] = []
    for i, org in enumerate(organizations):
        when = IN_FORCE + timedelta(seconds=rng.uniform(0, span * 0.9))
        decision_no = f"威市监罚〔2026〕{i + 1}号"
        out.append(
            {
                "record_id": f"admin.penalty_decision/{i + 1}",
                "subject_id": org,
                "type": "admin.penalty_decision",
                "occurred_at": when.isoformat() + "Z",
                "source": MARKET_REGULATOR,
                "attributes": {
                    "decision_no": decision_no,
                    "severity": rng.choice(SEVERITIES),
                    "authority": "Weihai market regulator",
                    "fine": rng.choice((2000, 5000, 20000, 100000)),
                },
            }
        )
        paid = when + timedelta(days=rng.uniform(5, 60))
        if rng.random() < 2 / 3 and paid < until:
            out.append(
                {
                    "record_id": f"admin.penalty_performed/{i + 1}",
                    "subject_id": org,
                    "type": "admin.penalty_performed",
                    "occurred_at": paid.isoformat() + "Z",
                    "source": MARKET_REGULATOR,
                    "attributes": {"decision_no": decision_no},
                }
            )
    return out


def add_penalties(store: Store, until: datetime, seed: int, *, count: int = 40) -> int:
    """Write penalties for up to ``count`` organizations of the registry; the number."""
    rows = store.sql.execute(
        "SELECT subject_id FROM (SELECT DISTINCT subject_id FROM records "
        "WHERE subject_kind = 'organization') o ORDER BY md5(subject_id || ?) LIMIT ?",
        [str(seed), count],
    ).fetchall()
    records = penalty_records([r[0] for r in rows], until, seed)
    if not records:
        return 0
    result = submit(store, records, strict=True, recorded_at=until)
    if result.rejected:
        raise ValueError(f"synthetic penalties refused: {result.rejects[0].reason}")
    return sum(1 for r in records if r["type"] == "admin.penalty_decision")
