from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import make_person_id, make_uscc
from xinyong.ledger import commit
from xinyong.ledger.intake import (
    FileFormatError,
    import_file,
    register_source,
    submit,
)
from xinyong.ledger.store import RegistryInUse, Store

PID = make_person_id(date(1990, 5, 17))
ORG = make_uscc()
COURT = "court:371082-rongcheng"
CITY = "city:rongcheng"
BANK = "lender:bank-a"
ADJ = "adjudicator:objections"
RECORDED = datetime(2025, 1, 1)


@pytest.fixture
def reg(store: Store) -> Store:
    register_source(store, COURT, "court")
    register_source(store, "court:other", "court")
    register_source(store, CITY, "city")
    register_source(store, BANK, "lender")
    register_source(store, ADJ, "adjudicator")
    return store


def rec(rid: str = "r1", **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "record_id": rid,
        "subject_id": PID,
        "type": "traffic.red_light",
        "occurred_at": "2024-03-05",
        "source": CITY,
        "attributes": {"ticket_no": "T1"},
    }
    base.update(kw)
    return base


def listing(rid: str = "L1", **attrs: Any) -> dict[str, Any]:
    a = {"case_no": "(2024)鲁1082执1号", "ground": "obstructs_enforcement"}
    a.update(attrs)
    return rec(rid, type="court.listing_decision", source=COURT, attributes=a)


def one_reject(store: Store, record: dict[str, Any]) -> tuple[str, str]:
    res = submit(store, [record], recorded_at=RECORDED)
    assert res.accepted == 0 and res.rejected == 1, res
    r = res.rejects[0]
    assert r.row == 1
    return r.field, r.reason


def count(store: Store, table: str = "records") -> int:
    row = store.sql.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


# ---------------------------------------------------------------- accepted rows


def test_accepted_row_is_canonical(reg: Store) -> None:
    res = submit(reg, [{**listing(), "subject_id": PID.lower()}], recorded_at=RECORDED)
    assert (res.accepted, res.rejected, res.batch_id) == (1, 0, 1)
    row = reg.sql.execute(
        "SELECT subject_id, subject_kind, birth_date, occurred_at, source_kind, recorded_at, "
        "batch_id, attributes, attr_extension_years, attr_grace_days, attr_ground, content_hash, "
        "subject_flags FROM records"
    ).fetchone()
    assert row is not None
    assert row[:7] == (
        PID,
        "person",
        date(1990, 5, 17),
        datetime(2024, 3, 4, 16),
        "court",
        RECORDED,
        1,
    )
    assert json.loads(row[7]) == {
        "case_no": "(2024)鲁1082执1号",
        "extension_years": 0,
        "grace_days": 0,
        "ground": "obstructs_enforcement",
    }
    assert list(json.loads(row[7])) == sorted(json.loads(row[7]))
    assert row[8:11] == (0, 0, "obstructs_enforcement")
    assert isinstance(row[11], bytes) and len(row[11]) == 16 and row[12] is None
    b = reg.sql.execute(
        "SELECT accepted, duplicates, rejected, recorded_at FROM batches"
    ).fetchall()
    assert b == [(1, 0, 0, RECORDED)]


def test_organization_and_flags(reg: Store) -> None:
    odd = make_person_id(date(1990, 1, 1), address="110199")
    res = submit(reg, [rec("a", subject_id=ORG), rec("b", subject_id=odd)], recorded_at=RECORDED)
    assert res.accepted == 2
    rows = reg.sql.execute(
        "SELECT subject_kind, birth_date, subject_flags FROM records ORDER BY record_id"
    ).fetchall()
    assert rows == [
        ("organization", None, None),
        ("person", date(1990, 1, 1), "address_code_unknown"),
    ]


def test_date_time_forms(reg: Store) -> None:
    res = submit(
        reg,
        [
            rec("a", occurred_at="2024-03-05T10:00:00+08:00"),
            rec("b", occurred_at="2024-03-05T02:00:00Z"),
            rec("c", occurred_at="2024-03-05 10:00"),
            rec("d", occurred_at=datetime(2024, 3, 5, 10)),
        ],
        recorded_at=RECORDED,
    )
    assert res.accepted == 4, res.rejects
    got = {r[0] for r in reg.sql.execute("SELECT occurred_at FROM records").fetchall()}
    assert got == {datetime(2024, 3, 5, 2)}


# ---------------------------------------------------------------- rejects


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"record_id": ""}, "record_id", "1-128"),
        ({"record_id": "x" * 129}, "record_id", "1-128"),
        ({"record_id": 5}, "record_id", "must be text"),
        ({"subject_id": None}, "subject_id", "missing"),
        (
            {"subject_id": PID[:17] + ("1" if PID[17] != "1" else "2")},
            "subject_id",
            "check character",
        ),
        ({"type": "traffic.speeding"}, "type", "unknown record type"),
        ({"occurred_at": "5 March 2024"}, "occurred_at", "ISO 8601"),
        ({"occurred_at": "2024-02-30"}, "occurred_at", "ISO 8601"),
        ({"occurred_at": "2099-01-01"}, "occurred_at", "future"),
        ({"source": "city:nowhere"}, "source", "not registered"),
        ({"source": BANK}, "source", "lender source may not report traffic.red_light"),
        ({"attributes": None}, "attributes", "missing"),
        ({"attributes": "T1"}, "attributes", "object"),
        ({"attributes": {}}, "attributes.ticket_no", "missing required"),
        ({"attributes": {"ticket_no": "T1", "speed": 9}}, "attributes.speed", "unknown attribute"),
        ({"attributes": {"ticket_no": 7}}, "attributes.ticket_no", "must be text"),
        ({"extra": 1}, "extra", "unknown envelope field"),
    ],
)
def test_envelope_rejects(reg: Store, change: dict[str, Any], field: str, reason: str) -> None:
    got = one_reject(reg, rec(**change))
    assert got[0] == field and reason in got[1], got


@pytest.mark.parametrize(
    ("record", "field", "reason"),
    [
        (listing(ground="bad_mood"), "attributes.ground", "must be one of"),
        (listing(extension_years=4), "attributes.extension_years", "≤ 3"),
        (listing(extension_years=1.5), "attributes.extension_years", "integer"),
        (listing(extension_years="1"), "attributes.extension_years", "integer"),
        (listing(extension_years=True), "attributes.extension_years", "integer"),
        (listing(grace_days=-1), "attributes.grace_days", "≥ 0"),
        (
            listing(ground="able_but_refuses", extension_years=1),
            "attributes.extension_years",
            "able_but_refuses",
        ),
        (rec(type="civic.volunteering", attributes={"hours": 0}), "attributes.hours", "> 0"),
        (rec(type="civic.volunteering", attributes={"hours": "2"}), "attributes.hours", "number"),
        (
            rec(
                type="loan.opened",
                source=BANK,
                attributes={"account_id": "a", "kind": "mortgage", "amount": -1},
            ),
            "attributes.amount",
            "≥ 0",
        ),
        (
            rec(
                type="registry.legal_representative",
                source="regulator:samr",
                subject_id=ORG,
                attributes={"person_id": PID},
            ),
            "source",
            "not registered",
        ),
    ],
)
def test_attribute_rejects(reg: Store, record: dict[str, Any], field: str, reason: str) -> None:
    got = one_reject(reg, record)
    assert got[0] == field and reason in got[1], got


def test_integral_numbers_and_defaults(reg: Store) -> None:
    res = submit(reg, [listing("a", extension_years=2.0, grace_days=30)], recorded_at=RECORDED)
    assert res.accepted == 1, res.rejects
    assert reg.sql.execute(
        "SELECT attr_extension_years, attr_grace_days FROM records"
    ).fetchone() == (2, 30)


def test_legal_representative(reg: Store) -> None:
    register_source(reg, "regulator:samr", "regulator")

    def lr(rid: str, subject: str, person: str) -> dict[str, Any]:
        return rec(
            rid,
            type="registry.legal_representative",
            source="regulator:samr",
            subject_id=subject,
            attributes={"person_id": person},
        )

    res = submit(
        reg,
        [
            lr("ok", ORG, PID.lower()),
            lr("on-person", PID, PID),
            lr("bad-person", ORG, PID[:17] + ("1" if PID[17] != "1" else "2")),
            lr("org-as-person", ORG, ORG),
        ],
        recorded_at=RECORDED,
    )
    assert res.accepted == 1
    got = {r.record_id: (r.field, r.reason) for r in res.rejects}
    assert got["on-person"][0] == "subject_id" and "organization" in got["on-person"][1]
    assert got["bad-person"][0] == "attributes.person_id"
    assert "check character" in got["bad-person"][1]
    assert got["org-as-person"][0] == "attributes.person_id"
    assert reg.sql.execute("SELECT attr_person_id FROM records").fetchone() == (PID,)


def test_duplicates_and_conflicts(reg: Store) -> None:
    first = submit(reg, [rec("a"), rec("b")], recorded_at=RECORDED)
    assert first.accepted == 2
    again = submit(
        reg,
        [
            rec("a", occurred_at="2024-03-05T00:00:00+08:00"),
            rec("b", attributes={"ticket_no": "OTHER"}),
            rec("c"),
            rec("c"),
            rec("d"),
            rec("d", attributes={"ticket_no": "X"}),
        ],
        recorded_at=RECORDED,
    )
    assert (again.accepted, again.duplicates, again.rejected) == (2, 2, 2)
    reasons = {(r.record_id, r.row): r.reason for r in again.rejects}
    assert "ledger" in reasons[("b", 2)] and "row 5" in reasons[("d", 6)]
    assert count(reg) == 4
    # a batch of only duplicates writes nothing
    none = submit(reg, [rec("a")], recorded_at=RECORDED)
    assert (none.accepted, none.duplicates, none.batch_id) == (0, 1, None)
    assert count(reg, "batches") == 2


def test_revocations(reg: Store) -> None:
    def revoke(rid: str, target: str, source: str) -> dict[str, Any]:
        return rec(
            rid,
            type="record.revoked",
            source=source,
            attributes={"target_record_id": target, "reason": "entered in error"},
        )

    submit(reg, [listing("L1")], recorded_at=RECORDED)
    res = submit(
        reg,
        [
            revoke("v1", "L1", COURT),  # same source: ok
            revoke("v2", "L1", "court:other"),  # other court: refused
            revoke("v3", "L1", ADJ),  # adjudicator: ok
            revoke("v4", "nope", COURT),  # no such record
            revoke("v5", "L2", COURT),  # L2 comes later in the batch
            listing("L2"),
            revoke("v6", "L2", COURT),  # earlier in the batch: ok
            rec("bad", source="city:nowhere"),
            revoke("v7", "bad", CITY),  # target rejected in the batch
        ],
        recorded_at=RECORDED,
    )
    ok = {r[0] for r in reg.sql.execute("SELECT record_id FROM records").fetchall()}
    assert ok == {"L1", "v1", "v3", "L2", "v6"}
    got = {r.record_id: r for r in res.rejects}
    assert set(got) == {"v2", "v4", "v5", "bad", "v7"}
    assert got["v2"].field == "attributes.target_record_id" and "adjudicator" in got["v2"].reason
    assert "not found" in got["v4"].reason and "not found" in got["v5"].reason


# ---------------------------------------------------------------- files


def _sample() -> list[dict[str, Any]]:
    return [
        listing("L1", grace_days=10),
        rec("t1"),
        rec("t2", subject_id=ORG),
        rec("bad", attributes={"ticket_no": "T9", "speed": "fast"}),
        rec("v1", type="civic.volunteering", attributes={"hours": 2.5}),
    ]


def _write(path: Path, records: list[dict[str, Any]], struct: bool = False) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    elif path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["record_id", "subject_id", "type", "occurred_at", "source", "attributes"])
            for r in records:
                w.writerow(
                    [
                        r["record_id"],
                        r["subject_id"],
                        r["type"],
                        r["occurred_at"],
                        r["source"],
                        json.dumps(r["attributes"], ensure_ascii=False),
                    ]
                )
    else:
        cols = {k: [r[k] for r in records] for k in records[0]}
        if not struct:
            cols["attributes"] = [json.dumps(a, ensure_ascii=False) for a in cols["attributes"]]
        pq.write_table(pa.table(cols), path)
    return path


def _ledger(store: Store) -> list[tuple[Any, ...]]:
    return store.sql.execute(
        "SELECT record_id, subject_id, type, occurred_at, attributes, content_hash "
        "FROM records ORDER BY record_id"
    ).fetchall()


@pytest.mark.parametrize("name", ["in.jsonl", "in.csv", "in.parquet", "struct.parquet"])
def test_formats_are_equivalent(tmp_path: Path, name: str) -> None:
    results = []
    for label, fname in (("ref", "ref.jsonl"), ("other", name)):
        with Store(tmp_path / f"{label}.duckdb") as st:
            for s, k in ((COURT, "court"), (CITY, "city")):
                register_source(st, s, k)
            path = _write(tmp_path / fname, _sample(), struct=name.startswith("struct"))
            res = import_file(st, path, progress=False, recorded_at=RECORDED)
            assert (res.accepted, res.rejected) == (4, 1)
            # by default next to the registry, named after the batch
            assert res.rejects_file == tmp_path / f"{label}.duckdb.batch-1.rejects.jsonl"
            lines = [json.loads(x) for x in res.rejects_file.read_text().splitlines()]
            assert lines[0]["record_id"] == "bad" and lines[0]["field"] == "attributes.speed"
            results.append(_ledger(st))
    assert results[0] == results[1]


def test_row_numbers_and_report_path(reg: Store, tmp_path: Path) -> None:
    path = _write(tmp_path / "x.csv", _sample())
    res = import_file(
        reg, path, progress=True, rejects_path=tmp_path / "r.jsonl", recorded_at=RECORDED
    )
    assert res.rejects[0].row == 5  # header is line 1
    assert res.rejects_file == tmp_path / "r.jsonl"
    path = _write(tmp_path / "x.jsonl", _sample())
    assert import_file(reg, path, progress=False, recorded_at=RECORDED).rejects[0].row == 4


def test_strict_refuses_everything(reg: Store, tmp_path: Path) -> None:
    path = _write(tmp_path / "x.parquet", _sample())
    res = import_file(reg, path, strict=True, progress=False, recorded_at=RECORDED)
    assert res.refused and res.accepted == 0 and res.rejected == 1 and res.batch_id is None
    assert count(reg) == 0 and count(reg, "batches") == 0
    assert res.rejects_file is not None and res.rejects_file.exists()
    clean = _write(tmp_path / "y.parquet", [r for r in _sample() if r["record_id"] != "bad"])
    res = import_file(reg, clean, strict=True, progress=False, recorded_at=RECORDED)
    assert res.accepted == 4 and not res.refused and res.rejects_file is None


def test_malformed_files(reg: Store, tmp_path: Path) -> None:
    missing = tmp_path / "b.csv"
    missing.write_text("record_id,subject_id,type\nr1,x,y\n")
    with pytest.raises(FileFormatError, match="missing column.*occurred_at"):
        import_file(reg, missing, progress=False)
    ragged = tmp_path / "c.csv"
    ragged.write_text(
        "record_id,subject_id,type,occurred_at,source,attributes\nr1,x,y,2024-01-01,s,{}\nr2,x\n"
    )
    with pytest.raises(FileFormatError, match=r"c\.csv, line 3"):
        import_file(reg, ragged, progress=False)
    junk = tmp_path / "d.parquet"
    junk.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(FileFormatError, match=r"d\.parquet: not a readable Parquet"):
        import_file(reg, junk, progress=False)
    nocol = tmp_path / "e.parquet"
    pq.write_table(pa.table({"record_id": ["a"]}), nocol)
    with pytest.raises(FileFormatError, match="missing column"):
        import_file(reg, nocol, progress=False)
    with pytest.raises(FileFormatError, match="unknown file type"):
        import_file(reg, tmp_path / "f.xml", progress=False)
    assert count(reg) == 0 and count(reg, "batches") == 0


# ---------------------------------------------------------------- atomicity, concurrency


def test_injected_failure_rolls_back(reg: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(commit, "_before_commit", boom)
    with pytest.raises(RuntimeError):
        submit(reg, [rec("a"), rec("b")], recorded_at=RECORDED)
    assert count(reg) == 0 and count(reg, "batches") == 0
    monkeypatch.setattr(commit, "_before_commit", None)
    assert submit(reg, [rec("a")], recorded_at=RECORDED).batch_id == 1


_CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from xinyong.ledger import commit, intake
    from xinyong.ledger.store import Store
    db, src, marker = sys.argv[1:4]
    def hang():
        Path(marker).write_text("in transaction")
        time.sleep(600)
    commit._before_commit = hang
    with Store(db) as st:
        intake.import_file(st, src, progress=False)
""")


def _child(tmp_path: Path, src: Path) -> tuple[subprocess.Popen[bytes], Path]:
    marker = tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path / "reg.duckdb"), str(src), str(marker)], env=env
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, "child ended early"
        assert time.monotonic() < deadline, "child never reached the commit"
        time.sleep(0.05)
    return proc, marker


def test_killed_import_leaves_nothing_and_locks_out_writers(tmp_path: Path) -> None:
    with Store(tmp_path / "reg.duckdb") as st:
        register_source(st, COURT, "court")
        register_source(st, CITY, "city")
    src = _write(tmp_path / "x.parquet", [rec(f"r{i}") for i in range(2000)])
    proc, _ = _child(tmp_path, src)
    try:
        with pytest.raises(RegistryInUse):
            Store(tmp_path / "reg.duckdb", wait=0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with Store(tmp_path / "reg.duckdb") as st:
        assert count(st) == 0 and count(st, "batches") == 0
        assert import_file(st, src, progress=False).accepted == 2000


def _tables(st: Store) -> set[str]:
    rows = st.sql.execute("SELECT table_name FROM information_schema.tables").fetchall()
    return {r[0] for r in rows}


def test_a_file_staged_in_chunks_and_killed_in_its_transaction_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 8 item 5: on DuckDB a file's chunks are staged in a temporary table, each
    chunk committed there on its own (so memory stays bounded), and moved into
    `records` in the batch's one transaction. SIGKILLed inside that transaction, after
    the move: nothing of the file is in the registry, no staging table either, and a
    rerun accepts it all."""
    monkeypatch.setenv("XINYONG_IMPORT_CHUNK_ROWS", "300")
    with Store(tmp_path / "reg.duckdb") as st:
        register_source(st, CITY, "city")
    src = _write(tmp_path / "x.parquet", _many(2000))
    proc, _ = _child(tmp_path, src)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Store(tmp_path / "reg.duckdb") as st:
        assert count(st) == 0 and count(st, "batches") == 0
        assert commit.STAGED not in _tables(st)
        res = import_file(st, src, progress=False)
        assert (res.accepted, res.rejected, res.batch_id) == (2000, 0, 1)
        assert count(st) == 2000 and count(st, "batches") == 1


def test_a_failed_staged_import_leaves_nothing_in_the_open_store(
    reg: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The staged rows of a file that fails at its commit are gone with it: nothing in
    `records`, the staging table dropped, and the next import of the same store
    accepts the whole file (its earlier chunks are not taken for duplicates)."""
    monkeypatch.setenv("XINYONG_IMPORT_CHUNK_ROWS", "300")
    src = _write(tmp_path / "x.parquet", _many(1000))

    def boom() -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(commit, "_before_commit", boom)
    with pytest.raises(RuntimeError):
        import_file(reg, src, progress=False)
    assert count(reg) == 0 and count(reg, "batches") == 0
    assert {commit.STAGED, commit.LEDGER} & _tables(reg) == set()
    monkeypatch.setattr(commit, "_before_commit", None)
    res = import_file(reg, src, progress=False)
    assert (res.accepted, res.duplicates, res.batch_id) == (1000, 0, 1)


def test_content_hash_is_md5_of_canonical_envelope(reg: Store) -> None:
    import hashlib

    res = submit(reg, [listing()], recorded_at=RECORDED)
    assert res.accepted == 1
    row = reg.sql.execute("SELECT attributes, content_hash FROM records").fetchone()
    assert row is not None
    envelope = (
        f'{{"attributes":{row[0]},"occurred_at":"2024-03-04T16:00:00.000000",'
        f'"record_id":"L1","source":"{COURT}","subject_id":"{PID}",'
        f'"type":"court.listing_decision"}}'
    )
    assert row[1] == hashlib.md5(envelope.encode()).digest()


def test_date_text_limit_and_optional_attributes(reg: Store) -> None:
    """CATALOG.md: `valid_until` is a date; statements are at most 4000 characters;
    a commitment names one of decision_no or case_no."""
    register_source(reg, "regulator:samr", "regulator")
    register_source(reg, "portal:subjects", "portal")
    lic = {"license_no": "L1", "activity": "credit scoring"}
    rows = [
        rec(
            "d1",
            subject_id=ORG,
            type="admin.license_granted",
            source="regulator:samr",
            attributes={**lic, "valid_until": "2027-01-01"},
        ),
        rec(
            "d2",
            subject_id=ORG,
            type="admin.license_granted",
            source="regulator:samr",
            attributes={**lic, "valid_until": "2027-13-01"},
        ),
        rec(
            "s1",
            type="objection.filed",
            source="portal:subjects",
            attributes={"target_record_id": "r9", "ground": "other", "statement": "x" * 4001},
        ),
        rec(
            "c1",
            type="subject.commitment_made",
            source="portal:subjects",
            attributes={"decision_no": "D-1", "text": "I will pay"},
        ),
    ]
    result = submit(reg, rows, recorded_at=RECORDED)
    assert result.accepted == 2
    reasons = {r.record_id: (r.field, r.reason) for r in result.rejects}
    assert reasons == {
        "d2": ("attributes.valid_until", "must be a date YYYY-MM-DD"),
        "s1": ("attributes.statement", "must be at most 4000 characters"),
    }
    stored = reg.sql.execute("SELECT attributes FROM records WHERE record_id = 'c1'").fetchone()
    assert stored is not None and json.loads(stored[0]) == {
        "decision_no": "D-1",
        "text": "I will pay",
    }


# ---------------------------------------------------------------- issue 6: hostile input


def test_a_malformed_json_line_is_one_reject_placed_where_it_breaks(
    reg: Store, tmp_path: Path
) -> None:
    path = tmp_path / "cut.jsonl"
    cut = json.dumps(rec("r2"))[:-1]  # the line ends before the record's closing brace
    path.write_text(json.dumps(rec("r1")) + "\n" + cut + "\n" + json.dumps(rec("r3")) + "\n")
    res = import_file(reg, path, progress=False, recorded_at=RECORDED)
    assert (res.accepted, res.rejected) == (2, 1)
    bad = res.rejects[0]
    assert bad.row == 2 and "not valid JSON" in bad.reason
    assert f"column {len(cut) + 1}" in bad.reason  # at the end of the line, not column 1


def test_byte_order_marks_and_json_arrays_are_read(reg: Store, tmp_path: Path) -> None:
    jsonl = _write(tmp_path / "bom.jsonl", [rec("j1")])
    jsonl.write_bytes(b"\xef\xbb\xbf" + jsonl.read_bytes())
    table = _write(tmp_path / "bom.csv", [rec("c1")])
    table.write_bytes(b"\xef\xbb\xbf" + table.read_bytes())
    array = tmp_path / "array.json"
    array.write_text(json.dumps([rec("a1"), rec("a2", record_id=7)]), "utf-8")
    for path, accepted in ((jsonl, 1), (table, 1), (array, 1)):
        res = import_file(reg, path, progress=False, recorded_at=RECORDED)
        assert res.accepted == accepted, (path, res.rejects)
    res = import_file(reg, array, progress=False, recorded_at=RECORDED)
    assert res.duplicates == 1 and res.rejects[0].row == 2  # position in the array
    assert count(reg) == 3


def test_duplicated_csv_header_is_refused_with_its_name(reg: Store, tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text(
        "record_id,subject_id,type,occurred_at,source,attributes,record_id\n"
        f"r1,{PID},traffic.red_light,2024-03-05,{CITY},{{}},r1\n"
    )
    with pytest.raises(FileFormatError, match="'record_id' appears twice"):
        import_file(reg, path, progress=False)


@pytest.mark.parametrize(
    ("record_id", "reason"),
    [
        (" ", "must not be blank"),
        ("\u3000", "must not be blank"),  # ideographic space
        ("r\x00", "no control or bidirectional"),
        ("r\u202e1", "no control or bidirectional"),
        ("r\u200f", "no control or bidirectional"),
    ],
)
def test_ids_are_printable_text(reg: Store, record_id: str, reason: str) -> None:
    field, got = one_reject(reg, rec(record_id))
    assert field == "record_id" and reason in got


def test_source_ids_are_printable_text(store: Store) -> None:
    with pytest.raises(ValueError, match="printable"):
        register_source(store, "court:\u202eevil", "court")


def test_conduct_before_birth_is_refused(reg: Store) -> None:
    # PID was born 1990-05-17 (identity number): 1990-05-16 is the day before
    field, reason = one_reject(reg, rec(occurred_at="1990-05-16"))
    assert field == "occurred_at" and "before the subject was born (1990-05-17" in reason
    assert submit(reg, [rec(occurred_at="1990-05-17")], recorded_at=RECORDED).accepted == 1


def test_rejects_path_is_checked_before_anything_is_committed(reg: Store, tmp_path: Path) -> None:
    path = _write(tmp_path / "x.jsonl", _sample())
    for where, message in (
        (tmp_path, "is a directory"),
        (tmp_path / "missing" / "r.jsonl", "does not exist"),
    ):
        with pytest.raises(ValueError, match=message):
            import_file(reg, path, rejects_path=where, progress=False, recorded_at=RECORDED)
        assert count(reg) == 0 and count(reg, "batches") == 0


def test_report_named_after_the_batch_and_never_stale(reg: Store, tmp_path: Path) -> None:
    path = _write(tmp_path / "x.jsonl", _sample())
    res = import_file(reg, path, progress=False, recorded_at=RECORDED)
    assert (
        res.batch_id == 1 and res.rejects_file == tmp_path / "registry.duckdb.batch-1.rejects.jsonl"
    )
    assert not (tmp_path / "x.jsonl.rejects.jsonl").exists()  # not next to the input
    given = tmp_path / "mine.jsonl"
    given.write_text("stale\n")
    clean = _write(tmp_path / "y.jsonl", [rec("fresh")])
    res = import_file(reg, clean, rejects_path=given, progress=False, recorded_at=RECORDED)
    assert res.rejected == 0 and given.read_text() == ""  # the old report is gone
    strict = import_file(reg, path, strict=True, progress=False, recorded_at=RECORDED)
    assert strict.refused and strict.rejects_file is not None
    assert strict.rejects_file.name.startswith("registry.duckdb.refused-")


def test_files_over_the_size_limit_are_refused(
    reg: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path / "x.jsonl", _sample())
    monkeypatch.setenv("XINYONG_MAX_IMPORT_BYTES", "100")
    with pytest.raises(FileFormatError, match="over the import limit of 100 bytes"):
        import_file(reg, path, progress=False)
    folder = tmp_path / "d.jsonl"
    folder.mkdir()
    with pytest.raises(FileFormatError, match="is a directory"):
        import_file(reg, folder, progress=False)


# ---------------------------------------------------------------- issue 8: streaming, faults


def _many(n: int) -> list[dict[str, Any]]:
    people = [
        make_person_id(date(1970 + i % 30, 1 + i % 12, 1 + i % 28), i % 1000) for i in range(97)
    ]
    return [
        rec(f"m{i}", subject_id=people[i % len(people)], attributes={"ticket_no": f"T{i}"})
        for i in range(n)
    ]


def test_a_killed_import_leaves_nothing_and_a_rerun_accepts_all(tmp_path: Path) -> None:
    """Issue 8 item 7: SIGKILL a real `xinyong import` mid-way through a file read in
    chunks. The file is fed through a pipe, so the kill surely lands after several
    chunks were validated and appended, and before the file ends."""
    db = tmp_path / "reg.duckdb"
    with Store(db) as st:
        register_source(st, CITY, "city")
    records = _many(3000)
    lines = [json.dumps(r) + "\n" for r in records]
    pipe = tmp_path / "feed.jsonl"
    os.mkfifo(pipe)
    env = {**os.environ, "XINYONG_IMPORT_CHUNK_ROWS": "250"}
    xinyong = str(Path(sys.executable).with_name("xinyong"))
    proc = subprocess.Popen(
        [xinyong, "import", str(pipe), "--db", str(db), "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with pipe.open("w") as feed:
            feed.writelines(lines[:2000])  # blocks until the importer has read most of it
            feed.flush()
            time.sleep(2)  # several chunks of 250 validated and appended, uncommitted
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    except BrokenPipeError:
        pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    whole = tmp_path / "all.jsonl"
    whole.write_text("".join(lines))
    with Store(db) as st:
        assert count(st) == 0 and count(st, "batches") == 0
        res = import_file(st, whole, progress=False, recorded_at=RECORDED)
        assert (res.accepted, res.rejected, res.batch_id) == (3000, 0, 1)
        assert count(st) == 3000 and count(st, "batches") == 1


def test_chunks_are_one_batch_and_batch_rows_commit_each(
    reg: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XINYONG_IMPORT_CHUNK_ROWS", "7")
    records = [*_many(30), rec("m3"), rec("m40", occurred_at="not a date")]  # m3 again: a conflict
    for name in ("x.parquet", "x.csv", "x.jsonl"):
        _write(tmp_path / name, records)
    res = import_file(reg, tmp_path / "x.parquet", progress=False, recorded_at=RECORDED)
    assert (res.accepted, res.rejected, res.batch_id, count(reg, "batches")) == (30, 2, 1, 1)
    assert {(r.row, r.record_id) for r in res.rejects} == {(31, "m3"), (32, "m40")}
    seen: list[dict[str, Any]] = []
    res = import_file(
        reg,
        tmp_path / "x.csv",
        progress=False,
        recorded_at=RECORDED,
        batch_rows=10,
        on_batch=seen.append,
    )
    # 32 rows in batches of 10: everything is a duplicate now, nothing is committed
    assert res.duplicates == 30 and res.accepted == 0 and res.batches == []
    fresh = _write(tmp_path / "y.jsonl", [rec(f"y{i}") for i in range(25)])
    res = import_file(
        reg, fresh, progress=False, recorded_at=RECORDED, batch_rows=10, on_batch=seen.append
    )
    assert [b["accepted"] for b in seen] == [10, 10, 5] and res.accepted == 25
    assert [b["batch_id"] for b in seen] == [2, 3, 4]


def test_a_file_of_many_chunks_is_decided_as_one_batch(
    reg: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Duplicates, conflicts and revocation targets are decided over the whole file,
    whatever the chunk size: a row conflicting with an earlier row of another chunk is
    refused (the rows staged so far count as the ledger); rows identical to the ledger
    are duplicates; a revocation finds its target staged chunks earlier; a rerun of
    the file is all duplicates and commits nothing."""
    monkeypatch.setenv("XINYONG_IMPORT_CHUNK_ROWS", "300")
    submit(reg, _many(100), recorded_at=RECORDED)  # m0..m99 in the ledger
    rows = _many(1000)
    rows.append({**rows[500], "attributes": {"ticket_no": "other"}})  # row 1001
    rows.append({**rows[10], "attributes": {"ticket_no": "other"}})  # row 1002
    rows.append(  # row 1003: its target is row 701, two chunks earlier
        rec(
            "v1",
            type="record.revoked",
            attributes={"target_record_id": "m700", "reason": "entered in error"},
        )
    )
    rows.append(  # row 1004
        rec(
            "v2",
            type="record.revoked",
            attributes={"target_record_id": "nowhere", "reason": "entered in error"},
        )
    )
    src = _write(tmp_path / "x.jsonl", rows)
    res = import_file(reg, src, progress=False, recorded_at=RECORDED)
    assert (res.accepted, res.duplicates, res.rejected) == (901, 100, 3)
    assert [(r.row, r.record_id, r.reason) for r in res.rejects] == [
        (1001, "m500", "conflict: record_id already in the ledger with other content"),
        (1002, "m10", "conflict: record_id already in the ledger with other content"),
        (
            1004,
            "v2",
            "target record nowhere not found (in the ledger or earlier in this input)",
        ),
    ]
    assert count(reg) == 100 + 901
    again = import_file(reg, src, progress=False, recorded_at=RECORDED)
    assert (again.accepted, again.duplicates, again.batch_id) == (0, 1001, None)
    assert count(reg) == 1001 and count(reg, "batches") == 2
