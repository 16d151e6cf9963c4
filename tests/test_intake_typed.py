"""Issue 8 item 5: Parquet files whose `attributes` column is a STRUCT of catalog
attribute names are validated as typed values (no JSON text round trip) and must
store exactly the rows, and report exactly the rejects, that the same records as
JSON text give; the canonical form and content hash stay those of CATALOG.md."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import make_person_id, make_uscc
from xinyong.ledger.intake import import_file, register_source
from xinyong.ledger.store import Store
from xinyong.ledger.validation import typed_fields

PID = make_person_id(date(1990, 5, 17))
REP = make_person_id(date(1975, 2, 3), 12)
ORG = make_uscc()
CITY, BANK, SAMR = "city:rongcheng", "lender:bank-a", "regulator:samr"
RECORDED = datetime(2025, 1, 1)


def _rec(
    rid: str, type_: str, source: str, attrs: dict[str, Any], sid: str = PID
) -> dict[str, Any]:
    return {
        "record_id": rid,
        "subject_id": sid,
        "type": type_,
        "occurred_at": "2024-03-05T10:00:00+08:00",
        "source": source,
        "attributes": attrs,
    }


def _records() -> list[dict[str, Any]]:
    return [
        _rec("ok-ticket", "traffic.red_light", CITY, {"ticket_no": "T1"}),
        _rec("ok-hours", "civic.volunteering", CITY, {"hours": 2.5}),
        _rec("ok-hours-int", "civic.volunteering", CITY, {"hours": 3.0}),
        _rec(
            "ok-overdue",
            "loan.payment_overdue",
            BANK,
            {"account_id": "A-1", "days_past_due": 31.0, "amount_due": 1200.75},
        ),
        _rec(
            "ok-licence",
            "admin.license_granted",
            SAMR,
            {"license_no": "L-9", "activity": "credit scoring", "valid_until": "2027-06-30"},
        ),
        _rec("ok-rep", "registry.legal_representative", SAMR, {"person_id": REP}, ORG),
        _rec("ok-name", "registry.name", SAMR, {"name": '孙"平\\欣 / Zoë'}),
        _rec("ok-inquiry", "inquiry.made", BANK, {"requester": BANK, "purpose": "self"}),
        # rejects, one per rule
        _rec("bad-missing", "traffic.red_light", CITY, {}),
        _rec("bad-extra", "traffic.red_light", CITY, {"ticket_no": "T2", "hours": 1.0}),
        _rec(
            "bad-int",
            "loan.payment_overdue",
            BANK,
            {"account_id": "A", "days_past_due": 2.5, "amount_due": 1.0},
        ),
        _rec(
            "bad-min",
            "loan.payment_overdue",
            BANK,
            {"account_id": "A", "days_past_due": 0.0, "amount_due": 1.0},
        ),
        _rec("bad-enum", "inquiry.made", BANK, {"requester": BANK, "purpose": "curiosity"}),
        _rec(
            "bad-date",
            "admin.license_granted",
            SAMR,
            {"license_no": "L", "activity": "a", "valid_until": "2027-02-30"},
        ),
        _rec(
            "bad-pid",
            "registry.legal_representative",
            SAMR,
            {"person_id": PID[:17] + "0" if PID[17] != "0" else PID[:17] + "1"},
            ORG,
        ),
        _rec("bad-empty", "registry.name", SAMR, {"name": ""}),
        _rec("bad-text", "civic.volunteering", CITY, {"hours": None, "ticket_no": "x"}),
    ]


def _files(tmp_path: Path, records: list[dict[str, Any]]) -> tuple[Path, Path]:
    cols = {k: [r[k] for r in records] for k in records[0] if k != "attributes"}
    attrs = [r["attributes"] for r in records]
    text = pa.table({**cols, "attributes": [json.dumps(a, ensure_ascii=False) for a in attrs]})
    typed = pa.table({**cols, "attributes": pa.array(attrs)})
    assert pa.types.is_struct(typed.schema.field("attributes").type)
    pq.write_table(text, tmp_path / "text.parquet")
    pq.write_table(typed, tmp_path / "typed.parquet")
    return tmp_path / "text.parquet", tmp_path / "typed.parquet"


def _import(tmp_path: Path, name: str, path: Path) -> tuple[list[Any], list[Any]]:
    with Store(tmp_path / f"{name}.duckdb") as st:
        for s, k in ((CITY, "city"), (BANK, "lender"), (SAMR, "regulator")):
            register_source(st, s, k)
        res = import_file(st, path, progress=False, recorded_at=RECORDED)
        rows = st.sql.execute("SELECT * FROM records ORDER BY record_id").fetchall()
    rejects = sorted((r.record_id, r.row, r.field, r.reason) for r in res.rejects)
    return rows, rejects


def test_struct_and_json_text_store_the_same_rows(tmp_path: Path) -> None:
    text, typed = _files(tmp_path, _records())
    assert typed_fields(pq.read_schema(typed).field("attributes").type) is not None
    rows_text, rejects_text = _import(tmp_path, "text", text)
    rows_typed, rejects_typed = _import(tmp_path, "typed", typed)
    assert rows_typed == rows_text
    assert rejects_typed == rejects_text
    assert {r[0] for r in rows_text} == {
        r["record_id"] for r in _records() if r["record_id"].startswith("ok")
    }
    fields = {r[0]: r[2] for r in rejects_text}
    assert fields == {
        "bad-missing": "attributes.ticket_no",
        "bad-extra": "attributes.hours",
        "bad-int": "attributes.days_past_due",
        "bad-min": "attributes.days_past_due",
        "bad-enum": "attributes.purpose",
        "bad-date": "attributes.valid_until",
        "bad-pid": "attributes.person_id",
        "bad-empty": "attributes.name",
        "bad-text": "attributes.ticket_no",
    }


def _canonical_hash(rid: str, sid: str, type_: str, source: str, attrs: str) -> bytes:
    envelope = (
        f'{{"attributes":{attrs},"occurred_at":"2024-03-05T02:00:00.000000",'
        f'"record_id":{json.dumps(rid)},"source":{json.dumps(source)},'
        f'"subject_id":"{sid}","type":"{type_}"}}'
    )
    return hashlib.md5(envelope.encode()).digest()


@pytest.mark.parametrize("kind", ["text", "typed"])
def test_canonical_attributes_and_hash_are_those_of_the_catalog(tmp_path: Path, kind: str) -> None:
    """Canonical attributes: JSON, keys sorted, no spaces, UTF-8 as is, numbers typed
    (a catalog number is a double, an integer an integer); content_hash the MD5 of
    the canonical envelope. The same bytes from JSON text and from a struct."""
    text, typed = _files(tmp_path, _records())
    with Store(tmp_path / "reg.duckdb") as st:
        for s, k in ((CITY, "city"), (BANK, "lender"), (SAMR, "regulator")):
            register_source(st, s, k)
        import_file(st, text if kind == "text" else typed, progress=False, recorded_at=RECORDED)
        got = {
            r[0]: (r[1], r[2])
            for r in st.sql.execute(
                "SELECT record_id, attributes, content_hash FROM records"
            ).fetchall()
        }
    expected = {
        "ok-ticket": {"ticket_no": "T1"},
        "ok-hours": {"hours": 2.5},
        "ok-hours-int": {"hours": 3.0},
        "ok-overdue": {"account_id": "A-1", "amount_due": 1200.75, "days_past_due": 31},
        "ok-licence": {
            "activity": "credit scoring",
            "license_no": "L-9",
            "valid_until": "2027-06-30",
        },
        "ok-rep": {"person_id": REP},
        "ok-name": {"name": '孙"平\\欣 / Zoë'},
        "ok-inquiry": {"purpose": "self", "requester": BANK},
    }
    by_id = {r["record_id"]: r for r in _records()}
    for rid, attrs in expected.items():
        canonical = json.dumps(attrs, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        r = by_id[rid]
        assert got[rid][0] == canonical, rid
        assert got[rid][1] == _canonical_hash(
            rid, r["subject_id"], r["type"], r["source"], canonical
        )


def test_struct_with_a_field_outside_the_catalog_travels_as_text(tmp_path: Path) -> None:
    records = [
        _rec("t1", "traffic.red_light", CITY, {"ticket_no": "T1", "speed": None}),
        _rec("t2", "traffic.red_light", CITY, {"ticket_no": "T2", "speed": "fast"}),
    ]
    _, typed = _files(tmp_path, records)
    assert typed_fields(pq.read_schema(typed).field("attributes").type) is None
    rows, rejects = _import(tmp_path, "x", typed)
    assert [r[0] for r in rows] == ["t1"]
    assert rejects == [("t2", 2, "attributes.speed", "unknown attribute for traffic.red_light")]


def test_import_memory_limit_is_restored_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, _ = _files(tmp_path, _records()[:1])
    with Store(tmp_path / "reg.duckdb") as st:
        register_source(st, CITY, "city")
        before = st.sql.execute("SELECT current_setting('memory_limit')").fetchone()
        assert import_file(st, text, progress=False, recorded_at=RECORDED).accepted == 1
        assert st.sql.execute("SELECT current_setting('memory_limit')").fetchone() == before
        monkeypatch.setenv("XINYONG_IMPORT_MEMORY", "1GB'; DROP TABLE records; --")
        with pytest.raises(ValueError, match="XINYONG_IMPORT_MEMORY"):
            import_file(st, text, progress=False, recorded_at=RECORDED)
        assert st.sql.execute("SELECT count(*) FROM records").fetchone() == (1,)


def test_typed_fields_of_another_kind_get_the_answers_json_text_gets(tmp_path: Path) -> None:
    """Text and number fields of a struct are checked as they are, with no JSON text
    round trip: a number where text belongs, text where a number belongs and whole
    numbers in integer attributes get exactly what the same values as JSON text get."""
    records = [
        _rec("int-ticket", "traffic.red_light", CITY, {"ticket_no": 5}),
        _rec("text-hours", "civic.volunteering", CITY, {"hours": "2"}),
        _rec(
            "ok-days",
            "loan.payment_overdue",
            BANK,
            {"account_id": "A", "days_past_due": 31, "amount_due": 2},
        ),
    ]
    text, typed = _files(tmp_path, records)
    kinds = pq.read_schema(typed).field("attributes").type
    assert {kinds.field(i).name: str(kinds.field(i).type) for i in range(kinds.num_fields)} == {
        "ticket_no": "int64",
        "hours": "string",
        "account_id": "string",
        "days_past_due": "int64",
        "amount_due": "int64",
    }
    rows_text, rejects_text = _import(tmp_path, "text", text)
    rows_typed, rejects_typed = _import(tmp_path, "typed", typed)
    assert rows_typed == rows_text and [r[0] for r in rows_typed] == ["ok-days"]
    assert rejects_typed == rejects_text
    assert rejects_text == [
        ("int-ticket", 1, "attributes.ticket_no", "must be text"),
        ("text-hours", 2, "attributes.hours", "must be a number"),
    ]


def test_typed_nan_and_infinities_are_not_numbers(tmp_path: Path) -> None:
    """JSON has no NaN or infinity; in a typed float field they are not numbers."""
    records = [
        _rec(f"h{i}", "civic.volunteering", CITY, {"hours": value})
        for i, value in enumerate([float("nan"), float("inf"), float("-inf"), 1.5])
    ]
    _, typed = _files(tmp_path, records)
    rows, rejects = _import(tmp_path, "typed", typed)
    assert [r[0] for r in rows] == ["h3"]
    assert rejects == [(f"h{i}", i + 1, "attributes.hours", "must be a number") for i in range(3)]
