"""Who may see what: the permission matrix, principals and keys, the audit chain,
and refusals from the command line (issue 10, items 1, 2 and 6)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import make_person_id
from xinyong.access import operations as ops
from xinyong.access.permissions import ACTIONS, ROLES, Refused, authorize
from xinyong.access.principals import PrincipalBook, local_operator
from xinyong.audit.chain import AuditChain
from xinyong.cli import _register, app
from xinyong.ledger.store import Store
from xinyong.packs import install_pack, shipped_pack_paths

_register()
runner = CliRunner()

SUBJECT = make_person_id()
OTHER = make_person_id(seq=456)

# The matrix as issue 10 states it, written out independently of the code:
# source submits; service asks checks (and, as a lender, inquires); subject reads
# its own data and objects; operator runs sources, packs, evaluation; adjudicator
# decides objections and repair; auditor reads the audit log and statistics;
# regulator grants licences, installs packs, reads statistics; public searches
# the public lists. Packs and the public lists are public documents.
PUBLIC_DOCS = {"packs.read", "public.search"}
ALLOWED: dict[str, set[str]] = {
    "source": {"import", "objections", "objections.file"},
    "service": {"check", "inquire"},
    "subject": {
        "score", "explain", "report", "objections", "repair", "audit.read",
        # issue 9: on its own records
        "objections.file", "objections.read", "statements.add", "repair.apply", "repair.read",
    },
    "operator": {
        "import", "check", "score", "explain", "report", "packs.install", "evaluate",
        "statistics", "audit.verify", "sources.manage", "principals.manage", "purge",
        # issue 9: operators may do every due-process step
        "objections.file", "objections.decide", "objections.read", "statements.add",
        "repair.apply", "repair.decide", "repair.read", "notices.send",
    },
    "adjudicator": {
        "explain", "report", "objections", "repair",
        "objections.decide", "objections.read", "repair.decide", "repair.read",
    },
    "auditor": {"explain", "report", "statistics", "audit.read", "audit.verify"},
    "regulator": {"packs.install", "statistics", "audit.verify", "licences.manage"},
    "public": set(),
}  # fmt: skip


def test_the_matrix_names_every_role_and_action_of_the_issue() -> None:
    assert set(ROLES) == set(ALLOWED)
    issue_actions = {
        "import", "check", "score", "explain", "report", "objections", "repair",
        "packs.read", "packs.install", "evaluate", "statistics", "audit.read",
        "audit.verify", "public.search",
    }  # fmt: skip
    assert issue_actions <= set(ACTIONS)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_role_times_every_action(role: str, action: str) -> None:
    """Each principal acts within its own scope (own subject, own source, own
    services, a named case), so only the role decides."""
    allowed = action in ALLOWED[role] or action in PUBLIC_DOCS
    call = {
        "name": f"p-{role}",
        "role": role,
        "action": action,
        "subject": SUBJECT,
        "own_subject": SUBJECT,
        "own_source": "lender:bank-a",
        "own_services": ("flight",),
        "source": "lender:bank-a",
        "service": "flight",
        "case": "case-1",
    }
    if allowed:
        authorize(**call)  # type: ignore[arg-type]
    else:
        with pytest.raises(Refused) as refused:
            authorize(**call)  # type: ignore[arg-type]
        assert refused.value.permission == action
        assert repr(action) in str(refused.value)


def test_scope_binds_subject_source_service_and_case() -> None:
    base = {"own_subject": SUBJECT, "own_source": "court:a", "own_services": ("flight",)}
    with pytest.raises(Refused, match="only its own data"):
        authorize(name="s", role="subject", action="report", subject=OTHER, **base)  # type: ignore[arg-type]
    with pytest.raises(Refused, match="may not submit records of source court:b"):
        authorize(name="c", role="source", action="import", source="court:b", **base)  # type: ignore[arg-type]
    with pytest.raises(Refused, match="lacks permission to check 'hotel.star_rated'"):
        authorize(name="v", role="service", action="check", service="hotel.star_rated", **base)  # type: ignore[arg-type]
    with pytest.raises(Refused, match="named case"):
        authorize(name="a", role="auditor", action="explain", subject=SUBJECT, **base)  # type: ignore[arg-type]
    authorize(name="a", role="auditor", action="explain", subject=SUBJECT, case="c-7", **base)  # type: ignore[arg-type]


# -- principals and keys ---------------------------------------------------------


def test_keys_are_stored_as_hashes_shown_once_and_revocable(tmp_path: Path) -> None:
    book = PrincipalBook(tmp_path / "r.principals.json")
    principal, key = book.add("bank-a", "service", services=["finance.credit"], source="lender:a")
    stored = book.path.read_text()
    secret = key.split(".")[2]
    assert secret not in stored and key not in stored
    assert book.authenticate("bank-a", key).role == "service"
    assert book.authenticate(None, key).name == "bank-a"  # a bearer key alone
    with pytest.raises(Refused):
        book.authenticate("bank-a", key[:-1] + ("A" if key[-1] != "A" else "B"))
    with pytest.raises(Refused):
        book.authenticate("nobody", key)
    second = book.new_key("bank-a")
    book.revoke("bank-a", principal.keys[0].key_id)
    with pytest.raises(Refused):
        book.authenticate("bank-a", key)
    assert book.authenticate("bank-a", second).name == "bank-a"
    book.revoke("bank-a")
    with pytest.raises(Refused):
        book.authenticate("bank-a", second)
    with pytest.raises(ValueError, match="needs --subject"):
        book.add("someone", "subject")


# -- the audit chain -------------------------------------------------------------


def _chain(tmp_path: Path, n: int = 5) -> AuditChain:
    chain = AuditChain(tmp_path / "r.duckdb.audit.jsonl")
    for i in range(n):
        chain.append(principal=f"p{i}", role="service", action="check", outcome="allowed",
                     subject=SUBJECT, detail={"service": "flight"})  # fmt: skip
    return chain


def test_the_chain_verifies_and_names_the_first_changed_entry(tmp_path: Path) -> None:
    chain = _chain(tmp_path)
    assert chain.verify().model_dump() == {
        "ok": True, "entries": 5, "first_bad": None, "reason": None,
    }  # fmt: skip
    lines = chain.path.read_text().splitlines(keepends=True)
    # Behind the registry's back: someone changes who looked in entry 3.
    chain.path.write_text("".join(lines[:2] + [lines[2].replace('"p2"', '"p9"')] + lines[3:]))
    report = chain.verify()
    assert (report.ok, report.first_bad, report.entries) == (False, 3, 2)


def test_the_chain_catches_a_removed_or_reordered_entry(tmp_path: Path) -> None:
    chain = _chain(tmp_path)
    lines = chain.path.read_text().splitlines(keepends=True)
    chain.path.write_text("".join(lines[:1] + lines[2:]))
    assert (chain.verify().ok, chain.verify().first_bad) == (False, 2)
    chain.path.write_text("".join([lines[1], lines[0], *lines[2:]]))
    assert (chain.verify().ok, chain.verify().first_bad) == (False, 1)


def test_a_torn_last_line_is_not_an_entry_and_is_cut_on_the_next_append(tmp_path: Path) -> None:
    chain = _chain(tmp_path, 3)
    with chain.path.open("ab") as fh:
        fh.write(b'{"seq":4,"at":"2026-')  # a writer killed mid-line
    assert chain.verify().model_dump()["ok"] is True
    chain.append(principal="p", role="operator", action="evaluate", outcome="done")
    report = chain.verify()
    assert (report.ok, report.entries) == (True, 4)


_WRITER = """
import sys
from xinyong.audit.chain import AuditChain
chain = AuditChain(sys.argv[1])
i = 0
while True:
    chain.append(principal="w", role="operator", action="check", outcome="allowed",
                 detail={"pad": "x" * 2000, "i": i})
    i += 1
"""


def test_a_killed_writer_leaves_the_chain_valid(tmp_path: Path) -> None:
    path = tmp_path / "r.duckdb.audit.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (not path.exists() or path.stat().st_size < 50_000):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    chain = AuditChain(path)
    report = chain.verify()
    assert report.ok and report.entries > 0
    chain.append(principal="after", role="operator", action="evaluate", outcome="done")
    assert chain.verify().ok


# -- through the operations layer and the CLI -------------------------------------


def _registry(tmp_path: Path) -> ops.Registry:
    db = tmp_path / "r.duckdb"
    Store(db).close()
    return ops.Registry(db)


def test_a_refusal_names_the_permission_and_is_audited(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    _, key = ops.add_principal(reg, local_operator(), "anyone", "public")
    who = ops.authenticate(reg, "anyone", key)
    with pytest.raises(Refused, match="lacks permission 'check'") as refused:
        ops.check(reg, who, SUBJECT, "flight")
    assert refused.value.permission == "check"
    last = list(reg.audit.entries())[-1]
    assert (last.principal, last.action, last.outcome, last.subject) == (
        "anyone", "check", "refused", SUBJECT,
    )  # fmt: skip
    assert last.detail["permission"] == "check"


def _cli(db: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--db", str(db)])
    return result.exit_code, result.stdout, result.stderr


def test_cli_refuses_bad_keys_and_missing_consent_audits_and_writes_nothing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "r.duckdb"
    assert _cli(db, "init", "--json")[0] == 0
    assert _cli(db, "sources", "add", "lender:bank-a", "--kind", "lender")[0] == 0
    code, out, _ = _cli(
        db, "principals", "add", "bank-a", "--role", "service", "--service", "finance.credit",
        "--source", "lender:bank-a", "--json",
    )  # fmt: skip
    assert code == 0
    key = json.loads(out)["key"]
    assert key not in (tmp_path / "r.duckdb.principals.json").read_text()

    def ledger_size() -> int:
        with Store(db) as store:
            row = store.sql.execute("SELECT count(*) FROM records").fetchone()
        return row[0] if row else -1

    before = ledger_size()
    code, _, err = _cli(db, "inquire", SUBJECT, "--purpose", "loan_approval",
                        "--as", "bank-a", "--key", key + "x", "--json")  # fmt: skip
    assert code == 1 and "bad key" in err
    code, _, err = _cli(db, "inquire", SUBJECT, "--purpose", "loan_approval",
                        "--as", "bank-a", "--key", key, "--json")  # fmt: skip
    assert code == 1 and "inquire:consent" in err
    code, _, err = _cli(db, "check", SUBJECT, "flight", "--as", "bank-a", "--key", key)
    assert code == 1 and "lacks permission to check 'flight'" in err
    assert ledger_size() == before
    entries = list(AuditChain.of_registry(db).entries())
    refusals = [(e.action, e.detail.get("permission")) for e in entries if e.outcome == "refused"]
    assert refusals == [
        ("authenticate", "authenticate"), ("inquire", "inquire:consent"), ("check", "check:flight"),
    ]  # fmt: skip
    code, out, _ = _cli(db, "audit", "verify", "--json")
    assert code == 0 and json.loads(out)["ok"] is True
    # Tampering behind the registry's back: the CLI names the entry and exits 1.
    path = AuditChain.of_registry(db).path
    lines = path.read_text().splitlines(keepends=True)
    bad = next(i for i, line in enumerate(lines) if '"refused"' in line)  # the bad key
    path.write_text(
        "".join(lines[:bad] + [lines[bad].replace('"refused"', '"allowed"')] + lines[bad + 1 :])
    )
    code, out, _ = _cli(db, "audit", "verify", "--json")
    assert code == 1
    assert {k: json.loads(out)[k] for k in ("ok", "entries", "first_bad")} == {
        "ok": False, "entries": bad, "first_bad": bad + 1,
    }  # fmt: skip


def test_a_source_submits_only_its_own_records(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    assert _cli(db, "init", "--json")[0] == 0
    for source in ("court:a", "court:b"):
        assert _cli(db, "sources", "add", source, "--kind", "court")[0] == 0
    code, out, _ = _cli(db, "principals", "add", "court-a", "--role", "source",
                        "--source", "court:a", "--json")  # fmt: skip
    key = json.loads(out)["key"]
    listing = {
        "subject_id": SUBJECT, "type": "court.listing_decision", "occurred_at": "2026-01-10",
        "attributes": {"case_no": "c-1", "ground": "evades_enforcement"},
    }  # fmt: skip
    theirs = tmp_path / "theirs.jsonl"
    theirs.write_text(json.dumps({**listing, "record_id": "b-1", "source": "court:b"}) + "\n")
    code, _, err = _cli(db, "import", str(theirs), "--as", "court-a", "--key", key)
    assert code == 1 and "import:other-source" in err
    ours = tmp_path / "ours.jsonl"
    ours.write_text(json.dumps({**listing, "record_id": "a-1", "source": "court:a"}) + "\n")
    code, out, _ = _cli(db, "import", str(ours), "--as", "court-a", "--key", key, "--json")
    assert code == 0 and json.loads(out)["accepted"] == 1
    with Store(db) as store:
        assert store.sql.execute("SELECT record_id FROM records").fetchall() == [("a-1",)]


def test_every_new_command_speaks_json(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    with Store(db) as store:  # one pack keeps the report quick
        install_pack(store, next(p for p in shipped_pack_paths() if p.stem == "financial"))

    def ok(*args: str) -> object:
        code, out, err = _cli(db, *args, "--json")
        assert code == 0, err
        return json.loads(out)

    auditor_key = ok("principals", "add", "aud", "--role", "auditor")["key"]  # type: ignore[index]
    subject_key = ok("principals", "add", "me", "--role", "subject", "--subject", SUBJECT)["key"]  # type: ignore[index]
    regulator_key = ok("principals", "add", "pbc", "--role", "regulator")["key"]  # type: ignore[index]
    assert [p["name"] for p in ok("principals", "list")] == ["aud", "me", "pbc"]  # type: ignore[union-attr, index]
    new = ok("principals", "key", "aud")
    ok("principals", "revoke", "aud", "--key-id", new["key_id"])  # type: ignore[index]
    assert ok("purge", "--dry-run") == {"dry_run": True, "purged": 0, "tombstones": []}
    status = ok("licences", "status", "commercial", "--as", "pbc", "--key", regulator_key)
    assert status["required"] is False  # type: ignore[index]
    out = tmp_path / "me.html"
    made = ok("report", SUBJECT, "--format", "html", "--out", str(out),
              "--as", "me", "--key", subject_key)  # fmt: skip
    assert made["charged"] is False and out.exists()  # type: ignore[index]
    # Who looked at me: the subject sees its own report; an auditor needs a case.
    mine = ok("audit", "show", "--subject", SUBJECT, "--as", "me", "--key", subject_key)
    assert [(e["principal"], e["action"]) for e in mine] == [("me", "report")]  # type: ignore[union-attr, index]
    code, _, err = _cli(db, "audit", "show", "--subject", SUBJECT, "--as", "aud",
                        "--key", auditor_key)  # fmt: skip
    assert code == 1 and "named case" in err
    seen = ok("audit", "show", "--subject", SUBJECT, "--as", "aud", "--key", auditor_key,
              "--case", "complaint-7")  # fmt: skip
    assert ("me", "report") in [(e["principal"], e["action"]) for e in seen]  # type: ignore[union-attr, index]
