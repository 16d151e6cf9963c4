"""The published snapshot (issue 8, item 2) and a killed evaluation (item 7).

The snapshot answers checks and scores at any instant only while it is current
(nothing imported, purged, licensed or installed since) and never for a registry
with purged histories or licence-gated systems; each answer still passes the
authorization and leaves its audit entry. A `xinyong evaluate` killed mid-way
leaves the previous results answering, and the next one completes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import make_person_id
from xinyong.access import operations as ops
from xinyong.access.principals import local_operator
from xinyong.checks import snapshot
from xinyong.cli import _register, app
from xinyong.ledger import generation
from xinyong.ledger.store import Store
from xinyong.timeutil import parse_instant

_register()
runner = CliRunner()

DEBTOR = make_person_id(date(1971, 3, 4), 51)
OTHER = make_person_id(date(1972, 5, 6), 52)
COURT = "court:371082-rongcheng"


def cli(db: Path, *args: str) -> dict:
    result = runner.invoke(app, [*args, "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def listing(rid: str, subject: str, day: str, case: str) -> dict:
    return {
        "record_id": rid,
        "subject_id": subject,
        "type": "court.listing_decision",
        "occurred_at": day,
        "source": COURT,
        "attributes": {"case_no": case, "ground": "able_but_refuses"},
    }


def _import(db: Path, *records: dict) -> None:
    path = db.with_name(f"in-{time.monotonic_ns()}.jsonl")
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    cli(db, "import", str(path))


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    """The judicial pack alone (each evaluate compiles fewer queries), one debtor."""
    from xinyong.ledger.store import Store
    from xinyong.packs import install_pack, shipped_pack_paths

    db = tmp_path / "r.duckdb"
    with Store(db) as store:
        install_pack(store, next(p for p in shipped_pack_paths() if p.stem == "judicial"))
    cli(db, "sources", "add", COURT, "--kind", "court")
    _import(db, listing("l1", DEBTOR, "2024-03-01", "(2024)鲁1082执1号"))
    cli(db, "evaluate")
    return db


def ask(db: Path, subject: str = DEBTOR, at: str = "2025-01-01") -> object:
    return ops.check(ops.Registry(db), local_operator(), subject, "flight", at=parse_instant(at))


def test_answers_from_the_snapshot_with_authorization_and_audit(registry: Path) -> None:
    assert snapshot.path_of(registry).exists()
    reg = ops.Registry(registry)
    before = len(list(reg.audit.entries()))
    answer = ask(registry)
    assert answer.answered_from == "snapshot" and answer.decision == "deny"
    assert ask(registry, at="2024-03-02").decision == "deny"  # an earlier instant too
    assert ask(registry, at="2024-02-01").decision == "allow"
    entries = list(reg.audit.entries())
    assert len(entries) == before + 3 and entries[-1].action == "check"
    # No permission, no answer: the snapshot sits behind the same authorization.
    _, key = ops.add_principal(reg, local_operator(), "desk", "service", services=["hotel"])
    who = ops.authenticate(reg, "desk", key)
    with pytest.raises(ops.Refused):
        ops.check(reg, who, DEBTOR, "flight", at=parse_instant("2025-01-01"))
    score = ops.score(reg, local_operator(), DEBTOR, "judicial", at=parse_instant("2025-01-01"))
    assert (score.score, score.grade) == (None, None)
    # A registry replaced by another file is never answered from its old snapshot.
    registry.write_text("record_id,subject_id\n")
    at = parse_instant("2025-01-01")
    assert snapshot.answer_check(registry, DEBTOR, "flight", at, None) is None


def test_an_import_retires_the_snapshot_until_the_next_evaluate(registry: Path) -> None:
    _import(registry, listing("l2", OTHER, "2024-06-01", "(2024)鲁1082执2号"))
    answer = ask(registry, OTHER)
    assert answer.answered_from == "replay" and answer.decision == "deny"
    cli(registry, "evaluate")
    answer = ask(registry, OTHER)
    assert answer.answered_from == "snapshot" and answer.decision == "deny"


def test_a_stale_or_guarded_snapshot_answers_nothing(registry: Path) -> None:
    """Fail closed: a snapshot of another generation, or of a registry with
    licence-gated systems, is never read."""
    generation.advance(registry)
    assert (
        snapshot.answer_check(registry, DEBTOR, "flight", parse_instant("2025-01-01"), None) is None
    )
    assert ask(registry).answered_from != "snapshot"
    cli(registry, "evaluate")
    assert ask(registry).answered_from == "snapshot"
    from xinyong.ledger.store import Store
    from xinyong.process import licensing

    with Store(registry) as store:
        licensing.bind(store, "commercial", "91350100M000100Y43", by="test")
    assert ask(registry).answered_from != "snapshot"
    cli(registry, "evaluate")  # republished, but guarded
    assert ask(registry).answered_from != "snapshot"
    assert ask(registry).decision == "deny"


def test_a_killed_evaluate_leaves_the_previous_results_answering(registry: Path) -> None:
    """Issue 8 items 3 and 7: SIGKILL a real `xinyong evaluate` (an incremental one)
    while it writes its results (DuckDB's write-ahead log appears), or at the latest
    after 20 s: the previous results still answer, and the next evaluate completes."""
    _import(registry, listing("l3", OTHER, "2024-06-01", "(2024)鲁1082执3号"))
    wal = Path(f"{registry}.wal")
    assert not wal.exists()  # the import checkpointed: a log now is the evaluate's
    xinyong = str(Path(sys.executable).with_name("xinyong"))
    proc = subprocess.Popen(
        [xinyong, "evaluate", "--db", str(registry)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    try:
        while proc.poll() is None and not wal.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert proc.poll() is None, "evaluate ended before it could be killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert ask(registry).decision == "deny"  # the previous run, or a replay
    assert ask(registry, OTHER).decision == "deny"
    # The killed run was an incremental one (issue 8 item 3). It is atomic: either it
    # left no run behind and the next one extends run 1 (recomputing the subject), or
    # the kill landed after its COMMIT and run 2 is whole (nothing left to recompute).
    with Store(registry, read_only=True) as store:
        row = store.sql.execute("SELECT max(run_id) FROM eval_runs").fetchone()
    committed = row is not None and row[0] == 2
    out = cli(registry, "evaluate")
    expected = (3, "incremental", 0) if committed else (2, "incremental", 1)
    assert (out["run_id"], out["mode"], out["subjects_recomputed"]) == expected
    assert ask(registry).answered_from == "snapshot"
    assert ask(registry, OTHER).decision == "deny"


_FAST_PATH_PROBE = """
import sys, threading
from xinyong.access import operations
import xinyong.cli
heavy = [m for m in ("duckdb", "ibis", "pandas", "pyarrow", "numpy") if m in sys.modules]
errors = []
def touch():
    try:
        operations.retention_purge.guard
        operations.licensing.bindings
    except Exception as exc:  # a half-initialized module
        errors.append(repr(exc))
threads = [threading.Thread(target=touch) for _ in range(32)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(heavy, errors)
"""


def test_the_check_path_loads_no_engine_and_its_deferred_modules_are_thread_safe() -> None:
    """A `xinyong check` answered from the snapshot imports neither DuckDB, Ibis nor
    pandas; the modules it defers load safely when a server's threads first touch
    them together (the stdlib LazyLoader raised AttributeError there)."""
    out = subprocess.run(
        [sys.executable, "-c", _FAST_PATH_PROBE], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[] []", out.stdout + out.stderr
