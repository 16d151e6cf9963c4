"""Due process from the command line (issue 9): the JSON contracts of objections,
statements and repair, bad input refused with exit 1 and nothing written, notices
delivered to a real local SMTP server (aiosmtpd), deadlines refused past the
published holiday calendar, and the linter's rule that lists and grades need an
objection process. The legal paths themselves are the scenario files in
``src/xinyong/process/scenarios/due_*.yaml`` (run by tests/test_access_process.py).
"""

from __future__ import annotations

import json
import smtplib
import socket
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from aiosmtpd.controller import Controller
from typer.testing import CliRunner

from xinyong.calendar import UncoveredYear, covered_until, due_date
from xinyong.cli import _register, app
from xinyong.packs import load_pack, shipped_pack_paths
from xinyong.packs.lint import lint

_register()
runner = CliRunner()

S = "11010519491231002X"
T = "371082198503122014"
COURT = "court:371082-rongcheng"


def cli(db: Path, *args: str) -> tuple[int, Any, str]:
    result = runner.invoke(app, [*args, "--db", str(db)])
    out: Any = None
    if result.exit_code == 0 and "--json" in args:
        out = json.loads(result.stdout)
    return result.exit_code, out, result.stderr if result.exit_code else ""


def records(db: Path) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute("SELECT count(*) FROM records").fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("due") / "r.duckdb"
    assert cli(db, "init")[0] == 0
    assert cli(db, "sources", "add", COURT, "--kind", "court")[0] == 0
    lines = [
        {
            "record_id": rid,
            "subject_id": subject,
            "type": "court.listing_decision",
            "occurred_at": "2025-06-01",
            "source": COURT,
            "attributes": {"case_no": case, "ground": "evades_enforcement", "grace_days": 30},
        }
        for rid, subject, case in (("c1", S, "(2025)鲁1082执1号"), ("c2", T, "(2025)鲁1082执2号"))
    ]
    src = db.parent / "in.jsonl"
    src.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", "utf-8")
    assert cli(db, "import", str(src))[0] == 0
    assert cli(db, "evaluate")[0] == 0
    return db


def test_objection_contracts_end_to_end(registry: Path) -> None:
    code, filed, err = cli(
        registry, "objections", "file", S, "--record", "c1", "--ground", "should_not_be_listed",
        "--statement", "not my case", "--at", "2025-09-26", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert set(filed) == {
        "objection_id", "subject_id", "record_id", "system", "ground", "filed_at",
        "review_due", "status",
    }  # fmt: skip
    assert filed["review_due"] == "2025-10-11"  # 26 Sep + 15 days: Sat 11 Oct, worked in lieu
    assert (filed["status"], filed["system"]) == ("open", "judicial")
    oid = filed["objection_id"]

    code, answer, _ = cli(registry, "check", S, "flight", "--at", "2025-09-30", "--json")
    assert answer["decision"] == "deny"
    assert answer["reasons"][0]["disputed"] is True
    assert answer["reasons"][0]["objection_id"] == oid

    code, listed, _ = cli(
        registry, "objections", "list", "--overdue", "--at", "2025-10-13", "--json"
    )
    assert [(o["objection_id"], o["review_due"], o["overdue"]) for o in listed] == [
        (oid, "2025-10-11", True)
    ]

    code, decided, err = cli(
        registry, "objections", "decide", oid, "--uphold", "--reason", "another person",
        "--at", "2025-10-10", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert {k: decided[k] for k in ("objection_id", "status", "correction_due")} == {
        "objection_id": oid,
        "status": "upheld",
        "correction_due": "2025-10-14",
    }
    assert decided["decided_at"].startswith("2025-10-10")
    code, answer, _ = cli(registry, "check", S, "flight", "--at", "2025-08-01", "--json")
    assert answer["decision"] == "allow"
    # The materialized results of the subject were replaced at once.
    con = duckdb.connect(str(registry), read_only=True)
    try:
        rows = con.execute("SELECT count(*) FROM consequences WHERE subject_id = ?", [S])
        assert rows.fetchone() == (0,)
        rows = con.execute("SELECT count(*) FROM consequences WHERE subject_id = ?", [T])
        assert rows.fetchone() != (0,)
    finally:
        con.close()

    code, said, err = cli(
        registry, "statements", "add", S, "--record", "c1", "--text", "I never owed", "--json"
    )
    assert code == 0, err
    code, explained, _ = cli(registry, "explain", S, "--system", "judicial", "--json")
    entry = explained["systems"][0]["list_entries"][0]
    assert entry["statements"][0]["text"] == "I never owed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("objections", "file", S, "--record", "nope", "--ground", "inaccurate",
          "--statement", "x"), "no record 'nope'"),
        (("objections", "file", S, "--record", "c2", "--ground", "inaccurate",
          "--statement", "x"), "is not about"),
        (("objections", "file", T, "--record", "c2", "--ground", "made_up",
          "--statement", "x"), "is not a ground"),
        (("objections", "file", T, "--record", "c2", "--ground", "inaccurate",
          "--statement", " "), "--statement"),
        (("objections", "file", T, "--record", "c2", "--ground", "inaccurate",
          "--statement", "x", "--at", "2025-05-01"), "before record c2 occurred"),
        (("objections", "decide", "objection-none", "--reject", "--reason", "x"),
         "no objection"),
        (("statements", "add", T, "--record", "c1", "--text", "x"), "is not about"),
        (("repair", "apply", T, "--record", "c2", "--commitment", "x"), "not published"),
    ],
)  # fmt: skip
def test_bad_input_exits_1_and_writes_nothing(
    registry: Path, args: tuple[str, ...], message: str
) -> None:
    before = records(registry)
    code, _, err = cli(registry, *args, "--json")
    assert code == 1
    assert message in err
    assert records(registry) == before


def test_a_decided_objection_and_a_late_reconsideration_are_refused(registry: Path) -> None:
    code, filed, _ = cli(
        registry, "objections", "file", T, "--record", "c2", "--ground", "inaccurate",
        "--statement", "wrong amount", "--at", "2025-07-01", "--json",
    )  # fmt: skip
    oid = filed["objection_id"]
    assert cli(registry, "objections", "decide", oid, "--reject", "--reason", "right",
               "--at", "2025-07-10", "--json")[0] == 0  # fmt: skip
    before = records(registry)
    code, _, err = cli(registry, "objections", "decide", oid, "--uphold", "--reason", "x")
    assert code == 1 and "already decided" in err
    # 10 Jul + 10 days = Sun 20 Jul, so the window closes Mon 21 Jul 2025.
    code, _, err = cli(registry, "objections", "reconsider", oid, "--statement", "late",
                       "--at", "2025-07-22")  # fmt: skip
    assert code == 1 and "window closed on 2025-07-21" in err
    assert records(registry) == before
    code, again, err = cli(registry, "objections", "reconsider", oid, "--statement", "in time",
                           "--at", "2025-07-21", "--json")  # fmt: skip
    assert code == 0, err
    assert again["status"] == "reconsideration"


def test_the_subject_report_marks_the_disputed_entry(registry: Path) -> None:
    """Under reconsideration (the previous test), T's listing is still contested."""
    from xinyong.access import operations as ops
    from xinyong.access.principals import local_operator

    report = ops.subject_report(ops.Registry(registry), local_operator(), T)
    judicial = next(s for s in report.systems if s["system"] == "judicial")
    assert judicial["list_entries"][0]["disputed"] is True
    assert [d["type"] for d in report.disputes][-1] == "objection.reconsideration_requested"


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[str, _Inbox]]:
    inbox = _Inbox()
    with socket.socket() as probe:  # a free port for the server
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"127.0.0.1:{port}", inbox
    finally:
        controller.stop()


def test_notices_are_delivered_once_to_a_real_smtp_server(
    registry: Path, smtp_server: tuple[str, _Inbox]
) -> None:
    address, inbox = smtp_server
    code, first, err = cli(registry, "notices", "send", "--smtp", address, "--json")
    assert code == 0, err
    assert first["sent"] == len(inbox.messages) >= 3  # two listings, the decisions
    assert first["pending"] == 0
    recipients = {r for m in inbox.messages for r in m.rcpt_tos}
    assert f"{S}@portal.xinyong.invalid" in recipients
    bodies = [m.content.decode() for m in inbox.messages]
    assert any("grace period of 30 days" in b for b in bodies)
    assert any("upheld" in b for b in bodies)
    # Idempotent: a second run sends nothing already sent.
    code, second, _ = cli(registry, "notices", "send", "--smtp", address, "--json")
    assert (second["sent"], second["queued"]) == (0, 0)
    assert first["sent"] == len(inbox.messages)


def test_notices_refuse_a_bad_address(registry: Path) -> None:
    code, _, err = cli(registry, "notices", "send", "--smtp", "nowhere")
    assert code == 1 and "HOST:PORT" in err


def test_deadlines_are_refused_past_the_published_calendar() -> None:
    last = covered_until()
    assert due_date(date(last, 1, 5), 3, "working_days") > date(last, 1, 5)
    with pytest.raises(UncoveredYear, match=str(last + 1)):
        due_date(date(last, 12, 28), 15, "days")
    with pytest.raises(UncoveredYear):
        due_date(date(last + 1, 3, 2), 3, "working_days")


def test_the_linter_refuses_lists_or_grades_without_an_objection_process() -> None:
    path = next(p for p in shipped_pack_paths() if p.stem == "judicial")
    pack = load_pack(path)
    bare = pack.model_copy(update={"process": None})
    errors = [f for f in lint(bare) if f.level == "error"]
    assert [f.rule_id for f in errors] == ["process"]
    assert "no objection process" in errors[0].message
    for shipped in shipped_pack_paths():
        assert not [f for f in lint(load_pack(shipped)) if f.level == "error"], shipped.stem


def test_a_pack_that_suspends_a_contested_listing(tmp_path: Path) -> None:
    """process.listing_in_force: false (no shipped pack says so; the SPC keeps the
    listing in force): while the objection is pending the list's restriction is
    suspended, and it applies again once the objection is rejected."""
    from xinyong.access import due_process as dp
    from xinyong.access import operations as ops
    from xinyong.access.principals import local_operator
    from xinyong.ledger.intake import register_source, submit
    from xinyong.ledger.store import Store
    from xinyong.packs import install_pack

    judicial = next(p for p in shipped_pack_paths() if p.stem == "judicial")
    text = judicial.read_text("utf-8").replace(
        "  listing_in_force: true   #", "  listing_in_force: false   #"
    )
    assert "listing_in_force: false" in text
    pack_path = tmp_path / "judicial.yaml"
    pack_path.write_text(text, "utf-8")
    db = tmp_path / "r.duckdb"
    with Store(db) as store:
        install_pack(store, pack_path)
        register_source(store, COURT, "court")
        result = submit(
            store,
            [
                {
                    "record_id": "c1",
                    "subject_id": S,
                    "type": "court.listing_decision",
                    "occurred_at": "2025-06-01",
                    "source": COURT,
                    "attributes": {"case_no": "(2025)鲁1082执1号", "ground": "evades_enforcement"},
                }
            ],
            strict=True,
        )
        assert result.accepted == 1
    reg, op = ops.Registry(db), local_operator()
    filed = dp.file_objection(reg, op, S, "c1", "inaccurate", "wrong", at=None)
    assert ops.check(reg, op, S, "flight").decision == "allow"  # suspended while pending
    dp.decide_objection(reg, op, filed["objection_id"], uphold=False, reason="right")
    assert ops.check(reg, op, S, "flight").decision == "deny"


class _Flaky(_Inbox):
    """Refuses the second message once (a server failing mid-run)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.calls += 1
        if self.calls == 2:
            return "451 try again later"
        return await super().handle_DATA(server, session, envelope)


def test_a_failed_delivery_is_retried_and_nothing_is_sent_twice(tmp_path: Path) -> None:
    from xinyong.access import due_process as dp
    from xinyong.access import operations as ops
    from xinyong.access.principals import local_operator
    from xinyong.process import notices

    inbox = _Flaky()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        db = tmp_path / "r.duckdb"
        assert cli(db, "init")[0] == 0
        reg, op = ops.Registry(db), local_operator()
        with reg.store() as store:
            for n in range(3):
                notices.queue(
                    store, f"test:{n}", S, "test", None, datetime(2025, 1, 1), f"n{n}", "body"
                )
        with pytest.raises(smtplib.SMTPDataError):
            dp.send_notices(reg, op, f"127.0.0.1:{port}")
        assert len(inbox.messages) == 1  # the first was accepted and marked sent
        again = dp.send_notices(reg, op, f"127.0.0.1:{port}")
        assert (again["sent"], again["pending"]) == (2, 0)
        ids = [
            m.original_content.split(b"Message-ID: ")[1].split(b"\r\n")[0] for m in inbox.messages
        ]
        assert sorted(ids) == [b"<test.0@xinyong>", b"<test.1@xinyong>", b"<test.2@xinyong>"]
    finally:
        controller.stop()
