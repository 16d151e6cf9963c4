"""Issue 13: the audit chain and the principal book of a PostgreSQL registry live in
its database, so API workers on several hosts share them. Each "host" here is its own
XINYONG_STATE_DIR (where a PostgreSQL registry's local files go) on one database.

What a user relies on: a key made on one host authenticates on every other, and a
revocation on one is refused by all (a running server too, on its next request);
audit entries appended from several processes on several hosts at once form one
chain that verifies, with ``seq`` 1, 2, 3 … without gaps; a row changed or removed
behind the registry's back is named by `audit verify`; `xinyong migrate` brings a
registry made at revision 0002 to 0003 and imports each host's old audit and
principal files (until then the registry is refused, naming the file), never losing
an entry; a fresh registry has the process tables (outbox, licensed_systems,
tombstones) from its migrations, with the DuckDB registry's columns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from conftest import make_person_id, pg_database, serving
from xinyong.access import operations as ops
from xinyong.access.permissions import Refused
from xinyong.access.principals import PrincipalBook, local_operator, principals_path
from xinyong.audit.chain import AuditChain, audit_path
from xinyong.cli import _register, app
from xinyong.ledger.postgres import alembic_config
from xinyong.ledger.store import RegistryOutdated
from xinyong.process import licensing, notices, purge

_register()
runner = CliRunner()

SUBJECT = make_person_id()


def cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def url() -> Iterator[str]:
    with pg_database() as made:
        code, _, err = cli("init", "--db", made)
        assert code == 0, err
        yield made


@pytest.fixture
def hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    """Switch between two hosts' state folders (XINYONG_STATE_DIR)."""
    yield Host(tmp_path, monkeypatch)


class Host:
    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root, self.monkeypatch = root, monkeypatch

    def dir(self, name: str) -> Path:
        return self.root / f"host-{name}"

    def on(self, name: str) -> Path:
        self.monkeypatch.setenv("XINYONG_STATE_DIR", str(self.dir(name)))
        return self.dir(name)


def _seqs(url: str) -> list[int]:
    with psycopg.connect(url) as con:
        return [r[0] for r in con.execute("SELECT seq FROM audit_log ORDER BY seq").fetchall()]


def test_a_key_made_on_one_host_authenticates_on_another(url: str, hosts: Host) -> None:
    hosts.on("a")
    reg_a = ops.Registry(Path(url))
    _, key = ops.add_principal(
        reg_a, local_operator(), "bank-a", "service", services=["finance.credit"]
    )
    hosts.on("b")
    reg_b = ops.Registry(Path(url))
    assert ops.authenticate(reg_b, None, key).name == "bank-a"
    assert ops.authenticate(reg_b, "bank-a", key).role == "service"
    second = ops.new_key(reg_b, local_operator(), "bank-a")
    hosts.on("a")
    assert ops.authenticate(reg_a, "bank-a", second).name == "bank-a"
    # revoked on host a: refused on host b
    ops.revoke_principal(reg_a, local_operator(), "bank-a", key.split(".")[1])
    hosts.on("b")
    with pytest.raises(Refused):
        ops.authenticate(reg_b, None, key)
    assert ops.authenticate(reg_b, None, second).name == "bank-a"
    # never deleted: the revoked key is still listed, with its revocation
    listed = {k.key_id: k.revoked_at for k in reg_b.principals.load()["bank-a"].keys}
    assert listed[key.split(".")[1]] is not None and listed[second.split(".")[1]] is None
    # only hashes in the database
    with psycopg.connect(url) as con:
        dumped = json.dumps(con.execute("SELECT * FROM api_keys").fetchall(), default=str)
    assert key.split(".")[2] not in dumped and second.split(".")[2] not in dumped
    # the entries of both hosts (changes, the refusal) are one chain, in the database
    report = reg_b.audit.verify()
    assert report.ok and report.entries == len(_seqs(url)) >= 4
    actions = [(e.action, e.outcome) for e in reg_a.audit.entries()]
    assert ("principals.manage", "done") in actions and ("authenticate", "refused") in actions
    for host in ("a", "b"):  # and no local file holds them
        assert not list(hosts.dir(host).rglob("*.audit.jsonl"))
        assert not list(hosts.dir(host).rglob("*.principals.json"))


_APPENDER = """
import os, sys, time
from xinyong.audit.chain import AuditChain
chain = AuditChain.of_registry(sys.argv[1])
name = sys.argv[2]
chain.about("nobody")  # connected before the start, so that the writers start together
open(sys.argv[3] + "." + name, "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.002)
for i in range(40):
    chain.append(principal=name, role="service", action="check", outcome="allowed",
                 subject="s", detail={"i": i, "name": name})
chain.append_many([{"principal": name, "role": "service", "action": "check",
                    "outcome": "allowed", "detail": {"i": 40 + j, "bulk": True}}
                   for j in range(10)])
"""


def test_processes_on_two_hosts_append_one_chain(url: str, hosts: Host, tmp_path: Path) -> None:
    start = tmp_path / "go"
    before = len(_seqs(url))
    procs = []
    for n in range(4):
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(sys.path),
            "XINYONG_STATE_DIR": str(hosts.dir("ab"[n % 2])),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _APPENDER, url, f"w{n}", str(start)],
                env=env,
                stderr=subprocess.PIPE,
            )
        )
    ready = [Path(f"{start}.w{n}") for n in range(4)]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        time.sleep(0.05)  # every writer imported and connected: start them together
    start.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    seqs = _seqs(url)
    assert seqs == list(range(1, before + 201))  # gapless
    hosts.on("b")
    chain = AuditChain.of_registry(url)
    report = chain.verify()
    assert (report.ok, report.entries) == (True, before + 200)
    mine = [e for e in chain.entries() if e.principal.startswith("w")]
    for n in range(4):  # each writer's entries in its own order
        assert [e.detail["i"] for e in mine if e.principal == f"w{n}"] == list(range(50))
    # interleaved: the writers ran at once, not one after another
    firsts = [next(i for i, e in enumerate(mine) if e.principal == f"w{n}") for n in range(4)]
    lasts = [max(i for i, e in enumerate(mine) if e.principal == f"w{n}") for n in range(4)]
    assert min(lasts) > max(firsts)
    assert len(chain.about("s")) == 160


def test_verify_names_a_changed_or_removed_row(url: str) -> None:
    chain = AuditChain.of_registry(url)
    for i in range(6):
        chain.append(principal=f"p{i}", role="service", action="check", outcome="allowed")
    n = len(_seqs(url))
    assert chain.verify().ok
    with psycopg.connect(url, autocommit=True) as con:
        # The database refuses to change or remove an entry ...
        for statement in (
            "UPDATE audit_log SET principal = 'p9' WHERE seq = 2",
            "DELETE FROM audit_log WHERE seq = 2",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                con.execute(statement)
        assert len(_seqs(url)) == n
        # ... and when its owner drops that guard, verify names what was done.
        con.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        con.execute("UPDATE audit_log SET principal = 'p9' WHERE seq = %s", [n - 3])
    report = chain.verify()
    assert (report.ok, report.first_bad, report.entries) == (False, n - 3, n - 4)
    assert report.reason == "content changed"
    code, out, _ = cli("audit", "verify", "--db", url, "--json")
    assert code == 1 and json.loads(out)["first_bad"] == n - 3
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("UPDATE audit_log SET principal = 'p2' WHERE seq = %s", [n - 3])
        assert chain.verify().ok
        con.execute("DELETE FROM audit_log WHERE seq = %s", [n - 1])
    report = chain.verify()
    assert (report.ok, report.first_bad) == (False, n - 1)
    assert "removed or reordered" in (report.reason or "")


def _at_0002(url: str) -> None:
    """A registry as xinyong made it at Alembic revision 0002."""
    from alembic import command

    engine = sa.create_engine(
        "postgresql+psycopg://" + url.removeprefix("postgresql://"), poolclass=sa.pool.NullPool
    )
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0002")
    engine.dispose()


def test_migrate_0002_to_0003_imports_each_hosts_files(hosts: Host) -> None:
    with pg_database() as url:
        _at_0002(url)
        with psycopg.connect(url) as con:
            tables = {r[0] for r in con.execute("SELECT tablename FROM pg_tables").fetchall()}
        assert "meta" in tables and not tables & {"audit_log", "principals", "outbox"}
        # each host kept its own files, as xinyong did before 0003
        made = {}
        for host, n in (("a", 3), ("b", 2)):
            hosts.on(host)
            chain = AuditChain(audit_path(url))
            for i in range(n):
                chain.append(principal=f"{host}{i}", role="service", action="check",
                             outcome="allowed", subject=SUBJECT)  # fmt: skip
            book = PrincipalBook(principals_path(url))
            made[host] = book.add(f"bank-{host}", "service", services=["flight"])[1]
        # the same principal on both hosts, with a key each
        _, shared_a = PrincipalBook(principals_path(url)).add("court-x", "auditor")
        hosts.on("a")
        _, shared_b = PrincipalBook(principals_path(url)).add("court-x", "auditor")
        file_a = [e.model_dump() for e in AuditChain(audit_path(url)).entries()]

        code, _, err = cli("check", SUBJECT, "flight", "--db", url)
        assert code == 1 and "xinyong migrate" in err
        code, out, err = cli("migrate", "--db", url, "--json")
        assert code == 0, err
        steps = " | ".join(step["what"] for step in json.loads(out)["steps"])
        assert "alembic 0002 -> 0003" in steps and "imported 3 audit entries" in steps
        assert not audit_path(url).exists() and not principals_path(url).exists()
        assert audit_path(url).with_name(audit_path(url).name + ".imported").exists()

        # host b has not imported yet: refused there, naming its file
        hosts.on("b")
        with pytest.raises(RegistryOutdated, match="audit.jsonl"):
            ops.Registry(Path(url))
        code, _, err = cli("principals", "list", "--db", url)
        assert code == 1 and str(audit_path(url)) in err.replace("\n", "")
        code, out, err = cli("migrate", "--db", url, "--json")
        assert code == 0, err
        assert "imported 2 audit entries" in " | ".join(s["what"] for s in json.loads(out)["steps"])
        code, out, err = cli("migrate", "--db", url, "--json")  # nothing more to do
        assert code == 0 and json.loads(out)["steps"] == []

        reg = ops.Registry(Path(url))
        report = reg.audit.verify()
        assert report.ok and report.entries == 2 + 3 + 2
        entries = list(reg.audit.entries())
        assert [e.action for e in entries].count("audit.import") == 2
        imported = [e for e in entries if e.action != "audit.import"]
        # host a's entries as they were, time included (only seq, prev, hash are new)
        keep = ("at", "principal", "role", "action", "subject", "outcome", "detail")
        assert [{k: e.model_dump()[k] for k in keep} for e in imported[:3]] == [
            {k: e[k] for k in keep} for e in file_a
        ]
        assert len(reg.audit.about(SUBJECT)) == 5
        for name, key in (("bank-a", made["a"]), ("bank-b", made["b"])):
            assert ops.authenticate(reg, None, key).name == name
        for key in (shared_a, shared_b):  # one principal, both hosts' keys
            assert ops.authenticate(reg, "court-x", key).name == "court-x"

        with psycopg.connect(url) as con:
            tables = {r[0] for r in con.execute("SELECT tablename FROM pg_tables").fetchall()}
            revision = con.execute("SELECT version_num FROM alembic_version").fetchone()
        assert {"outbox", "licensed_systems", "tombstones", "audit_log", "api_keys"} <= tables
        assert revision == ("0003",)


def test_a_broken_old_audit_file_is_not_imported(hosts: Host) -> None:
    with pg_database() as url:
        _at_0002(url)
        hosts.on("a")
        chain = AuditChain(audit_path(url))
        for i in range(3):
            chain.append(principal=f"p{i}", role="service", action="check", outcome="allowed")
        lines = chain.path.read_text().splitlines(keepends=True)
        chain.path.write_text("".join([lines[0], lines[2]]))
        code, _, err = cli("migrate", "--db", url)
        assert code == 1 and "broken at entry 2" in err and "not imported" in err
        assert chain.path.exists()  # kept where it was, and the registry still refused
        with pytest.raises(RegistryOutdated, match="audit.jsonl"):
            ops.Registry(Path(url))


def test_a_fresh_registry_has_the_process_tables_with_duckdb_columns(
    url: str, tmp_path: Path
) -> None:
    duck = duckdb.connect(str(tmp_path / "d.duckdb"))
    want = {}
    for table, ddl in (
        ("outbox", notices._DDL),
        ("licensed_systems", licensing._DDL),
        ("tombstones", purge._DDL),
    ):
        duck.execute(ddl)
        want[table] = [r[0] for r in duck.execute(f"DESCRIBE {table}").fetchall()]
    with psycopg.connect(url) as con:
        have = {
            table: [
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = %s ORDER BY ordinal_position",
                    [table],
                ).fetchall()
            ]
            for table in want
        }
    assert have == want


def test_a_server_on_one_host_sees_keys_and_revocations_made_on_another(
    url: str, hosts: Host
) -> None:
    with serving(url, XINYONG_STATE_DIR=str(hosts.dir("a"))) as client:
        hosts.on("b")
        reg = ops.Registry(Path(url))
        _, key = ops.add_principal(reg, local_operator(), "watcher", "auditor")
        headers = {"Authorization": f"Bearer {key}"}
        for _ in range(4):  # both workers
            me = client.get("/v1/me", headers=headers)
            assert me.status_code == 200 and me.json()["name"] == "watcher", me.text
        ops.revoke_principal(reg, local_operator(), "watcher")
        for _ in range(4):
            assert client.get("/v1/me", headers=headers).status_code == 401
        # the server's refusals are in the one chain
        refused = [e for e in reg.audit.entries() if e.action == "authenticate"]
        assert len(refused) == 4 and reg.audit.verify().ok


def test_a_replaced_registry_keeps_its_audit_chain_and_principals(url: str) -> None:
    from xinyong.ledger import postgres

    reg = ops.Registry(Path(url))
    _, key = ops.add_principal(reg, local_operator(), "bank-a", "service", services=["flight"])
    before = reg.audit.verify().entries
    postgres.reset(url)  # `xinyong demo --force` replacing the registry
    code, _, err = cli("init", "--db", url)
    assert code == 0, err
    reg = ops.Registry(Path(url))
    assert ops.authenticate(reg, None, key).name == "bank-a"
    report = reg.audit.verify()
    assert report.ok and report.entries > before


def test_principals_added_at_once_on_two_hosts_are_all_kept(url: str) -> None:
    """Editors queue on the book's row: none overwrites another's principal."""
    from concurrent.futures import ThreadPoolExecutor

    books = [PrincipalBook(url), PrincipalBook(url)]  # one per host (state dirs do not matter)

    def add(n: int) -> str:
        return books[n % 2].add(f"svc-{n}", "service", services=["flight"])[1]

    with ThreadPoolExecutor(4) as pool:
        keys = list(pool.map(add, range(12)))
    book = books[0].load()
    assert {f"svc-{n}" for n in range(12)} <= set(book)
    for n, key in enumerate(keys):
        assert books[1].authenticate(None, key).name == f"svc-{n}"
    with pytest.raises(ValueError, match="exists"):
        books[1].add("svc-3", "service", services=["flight"])
