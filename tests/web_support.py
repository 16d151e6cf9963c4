"""A small registry for the HTTP and browser tests: the shipped packs, one court,
one lender, a listed debtor (SPC Fa Shi [2017] No. 7: a listing decision denies
flights), a clean person, evaluated; and one principal per role with its key."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from conftest import make_person_id
from xinyong.access import operations as ops
from xinyong.access.principals import local_operator

LISTED = make_person_id(born=date(1980, 3, 4), seq=211)
CLEAN = make_person_id(born=date(1985, 6, 7), seq=322)
COURT = "court:371082-rongcheng"
LENDER = "lender:bank-a"
CASE_NO = "(2024)鲁1082执100号"


#: The one court listing the test registry holds (the subject LISTED).
LISTING = {
    "record_id": "c1",
    "subject_id": LISTED,
    "type": "court.listing_decision",
    "occurred_at": "2024-03-01",
    "source": COURT,
    "attributes": {
        "case_no": CASE_NO,
        "ground": "evades_enforcement",
        "extension_years": 1,
        "grace_days": 30,
    },
}


def build_registry(folder: Path) -> tuple[Path, dict[str, str]]:
    """(registry path, {role: key})."""
    from xinyong.packs import shipped_pack_paths

    db = folder / "web.duckdb"
    reg, op = ops.Registry(db), local_operator()
    from xinyong.ledger.store import Store

    with Store(db):
        pass
    with reg.holding():
        for path in shipped_pack_paths():
            ops.install_pack(reg, op, path)
        ops.register_source(reg, op, COURT, "court")
        ops.register_source(reg, op, LENDER, "lender")
    records = folder / "records.jsonl"
    records.write_text(
        json.dumps(LISTING, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    ops.import_records(reg, op, records)
    ops.evaluate(reg, op)
    keys: dict[str, str] = {}
    scopes: dict[str, dict[str, object]] = {
        "operator": {},
        "public": {},
        "auditor": {},
        "regulator": {},
        "adjudicator": {},
        "service": {"services": ["flight", "train.high_speed"], "source": LENDER},
        "subject": {"subject_id": LISTED},
        "source": {"source": COURT},
    }
    for role, scope in scopes.items():
        _, keys[role] = ops.add_principal(reg, op, f"t-{role}", role, **scope)  # type: ignore[arg-type]
    return db, keys


FIRM = "91371082MA3C4D5E7U"
REGULATOR = "regulator:samr-rongcheng"
PENALTY_NO = "荣市监罚〔2026〕12号"


def add_penalty(db: Path) -> str:
    """A firm's ordinary administrative penalty, decided 15 Apr 2026 and paid on 30 Jun
    (NDRC Order No. 36: repair from 15 Jul), and the firm's portal key."""
    reg, op = ops.Registry(db), local_operator()
    ops.register_source(reg, op, REGULATOR, "regulator")
    lines = [
        {"record_id": "n1", "subject_id": FIRM, "type": "registry.name",
         "occurred_at": "2020-01-01", "source": REGULATOR,
         "attributes": {"name": "荣成海味有限公司"}},
        {"record_id": "p1", "subject_id": FIRM, "type": "admin.penalty_decision",
         "occurred_at": "2026-04-15", "source": REGULATOR,
         "attributes": {"decision_no": PENALTY_NO, "severity": "ordinary",
                        "authority": "Rongcheng market regulator", "fine": 20000}},
        {"record_id": "pp1", "subject_id": FIRM, "type": "admin.penalty_performed",
         "occurred_at": "2026-06-30", "source": REGULATOR,
         "attributes": {"decision_no": PENALTY_NO}},
    ]  # fmt: skip
    path = db.parent / "penalty.jsonl"
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), "utf-8")
    ops.import_records(reg, op, path)
    ops.evaluate(reg, op)
    _, key = ops.add_principal(reg, op, "t-firm", "subject", subject_id=FIRM)
    return key
