"""Operations that change the registry or administer access: import, evaluate,
packs, sources, purge, the audit log, principals and licences. Each passes the
gate (``access.gate``) like every read; ``access.operations`` re-exports them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xinyong.access.gate import Registry, allow, audit_event, normalize_subject
from xinyong.access.principals import Principal
from xinyong.audit.chain import AuditEntry, ChainReport
from xinyong.lazy import lazy

if TYPE_CHECKING:
    from xinyong.process import licensing
    from xinyong.process import purge as retention_purge
else:
    licensing = lazy("xinyong.process.licensing")
    retention_purge = lazy("xinyong.process.purge")
from xinyong.timeutil import now_utc, to_local_iso


def _file_sources(path: Path) -> set[str]:
    """The source ids a record file names (for a source principal's own-source rule)."""
    import duckdb

    from xinyong.ledger import readers

    sources: set[str] = set()
    fmt = readers.detect_format(path)
    with duckdb.connect() as con:
        for chunk in readers.read_chunks(path, fmt, con, 1 << 20):
            sources.update(s for s in chunk.table.column("source").to_pylist() if s is not None)
    return sources


def import_records(
    reg: Registry,
    who: Principal,
    path: Path,
    *,
    strict: bool = False,
    rejects_path: Path | None = None,
    progress: bool = False,
    batch_rows: int | None = None,
    on_batch: Any = None,
) -> Any:
    from xinyong.ledger.intake import import_file

    allow(reg, who, "import")
    if who.role == "source":
        for source in sorted(_file_sources(path)):
            allow(reg, who, "import", source=source)
    with reg.store() as store:
        result = import_file(
            store,
            path,
            strict=strict,
            rejects_path=rejects_path,
            progress=progress,
            batch_rows=batch_rows,
            on_batch=on_batch,
        )
    audit_event(
        reg,
        who,
        "import",
        "done",
        file=str(path),
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejected=result.rejected,
        batch_id=result.batch_id,
    )
    return result


def evaluate(
    reg: Registry,
    who: Principal,
    *,
    as_of: datetime | None = None,
    known_at: datetime | None = None,
    engine: str = "duckdb",
    pg_url: str | None = None,
    spark_master: str | None = None,
    full: bool = False,
) -> tuple[int, Any]:
    """Evaluate every installed pack on ``engine`` (duckdb, postgres, spark: see
    ``engine.backends``) and materialize the results; (run_id, as_of)."""
    as_of = as_of or now_utc()
    outcome = evaluate_run(
        reg,
        who,
        as_of=as_of,
        known_at=known_at,
        engine=engine,
        pg_url=pg_url,
        spark_master=spark_master,
        full=full,
    )
    return outcome.run_id, as_of


def evaluate_run(
    reg: Registry,
    who: Principal,
    *,
    as_of: datetime | None = None,
    known_at: datetime | None = None,
    engine: str = "duckdb",
    pg_url: str | None = None,
    spark_master: str | None = None,
    full: bool = False,
) -> Any:
    """``evaluate``, incrementally when the latest run can be extended (``full``: never);
    the ``engine.incremental.Outcome`` (run_id, mode, why, subjects_recomputed)."""
    from xinyong.catalog import load_catalog
    from xinyong.checks.snapshot import publish
    from xinyong.engine.backends import check_engine
    from xinyong.engine.incremental import evaluate_registry

    check_engine(engine)
    allow(reg, who, "evaluate")
    as_of = as_of or now_utc()
    with reg.store(needs_packs=True) as store:
        outcome = evaluate_registry(
            store,
            engine,
            as_of=as_of,
            known_at=known_at,
            full=full,
            pg_url=pg_url,
            spark_master=spark_master,
        )
        publish(store, sorted(load_catalog().services))
    audit_event(
        reg,
        who,
        "evaluate",
        "done",
        run_id=outcome.run_id,
        as_of=to_local_iso(as_of),
        known_at=to_local_iso(known_at),
        engine=engine,
        mode=outcome.mode,
        subjects_recomputed=outcome.subjects_recomputed,
    )
    return outcome


def install_pack(reg: Registry, who: Principal, path: Path) -> Any:
    from xinyong.packs import install_pack as install

    allow(reg, who, "packs.install")
    with reg.store() as store:
        pack = install(store, path)
    audit_event(
        reg,
        who,
        "packs.install",
        "done",
        system=pack.system,
        version=pack.meta.version,
        effective_from=str(pack.meta.effective_from),
        file=str(path),
    )
    return pack


def compile_plans(reg: Registry, who: Principal) -> int:
    """Compile and store the replay plans (engine/compiled.py) of every installed pack
    version the registry has no plan for; the number compiled."""
    from xinyong.engine.compiled import store_plans
    from xinyong.packs.loader import every_installed_pack

    allow(reg, who, "packs.install")
    with reg.store(needs_packs=True) as store:
        return store_plans(store, every_installed_pack(store))


def compact(reg: Registry, who: Principal) -> Any:
    """Rewrite the ledger in subject order (ledger/compaction.py): one subject's
    records are then found without reading the whole ledger. An operator's
    maintenance, as evaluation is; the content does not change."""
    from xinyong.ledger.compaction import compact as rewrite

    allow(reg, who, "evaluate")
    with reg.store() as store:
        done = rewrite(store)
    audit_event(
        reg,
        who,
        "compact",
        "done",
        records=done.records,
        row_groups_before=done.row_groups_before,
        row_groups_after=done.row_groups_after,
        rewritten=done.rewritten,
    )
    return done


def register_source(reg: Registry, who: Principal, source_id: str, kind: str) -> None:
    from xinyong.ledger.intake import register_source as register

    allow(reg, who, "sources.manage")
    with reg.store() as store:
        register(store, source_id, kind)
    audit_event(reg, who, "sources.manage", "done", source_id=source_id, kind=kind)


def purge(
    reg: Registry, who: Principal, *, dry_run: bool = False, now: datetime | None = None
) -> list[retention_purge.Tombstone]:
    allow(reg, who, "purge")
    with reg.store() as store:
        stones = retention_purge.purge(store, now, dry_run=dry_run)
    if dry_run:
        audit_event(reg, who, "purge", "done", dry_run=True, due=len(stones))
    for stone in stones if not dry_run else []:
        audit_event(
            reg,
            who,
            "purge",
            "done",
            subject=stone.subject_id,
            record_id=stone.record_id,
            type=stone.type,
            rule=stone.rule,
            purged_at=to_local_iso(stone.purged_at),
        )
    return stones


def audit_verify(reg: Registry, who: Principal) -> ChainReport:
    allow(reg, who, "audit.verify")
    report = reg.audit.verify()
    # The verification itself goes into the log only when the chain is sound: appending
    # after a broken entry would bury the evidence under a valid-looking tail.
    if report.ok:
        audit_event(reg, who, "audit.verify", "done", entries=report.entries)
    return report


def audit_show(
    reg: Registry, who: Principal, subject: str, *, case: str | None = None
) -> list[AuditEntry]:
    """Who looked at ``subject`` (and what was decided about it)."""
    subject = normalize_subject(subject)
    allow(reg, who, "audit.read", subject=subject, case=case)
    entries = reg.audit.about(subject)
    audit_event(reg, who, "audit.read", "allowed", subject=subject, case=case)
    return entries


def add_principal(
    reg: Registry,
    who: Principal,
    name: str,
    role: str,
    *,
    source: str | None = None,
    services: list[str] | None = None,
    subject_id: str | None = None,
) -> tuple[Principal, str]:
    allow(reg, who, "principals.manage")
    if subject_id is not None:
        subject_id = normalize_subject(subject_id)
    principal, key = reg.principals.add(
        name, role, source=source, services=services, subject_id=subject_id
    )
    audit_event(
        reg,
        who,
        "principals.manage",
        "done",
        op="add",
        name=name,
        role=role,
        key_id=principal.keys[-1].key_id,
    )
    return principal, key


def list_principals(reg: Registry, who: Principal) -> list[Principal]:
    allow(reg, who, "principals.manage")
    return list(reg.principals.load().values())


def revoke_principal(
    reg: Registry, who: Principal, name: str, key_id: str | None = None
) -> Principal:
    allow(reg, who, "principals.manage")
    principal = reg.principals.revoke(name, key_id)
    audit_event(reg, who, "principals.manage", "done", op="revoke", name=name, key_id=key_id)
    return principal


def new_key(reg: Registry, who: Principal, name: str) -> str:
    allow(reg, who, "principals.manage")
    key = reg.principals.new_key(name)
    audit_event(
        reg, who, "principals.manage", "done", op="key", name=name, key_id=key.split(".")[1]
    )
    return key


def bind_licence(reg: Registry, who: Principal, system: str, operator_id: str) -> str:
    allow(reg, who, "licences.manage")
    with reg.store() as store:
        operator = licensing.bind(store, system, operator_id, by=who.name)
    audit_event(reg, who, "licences.manage", "done", system=system, operator_id=operator)
    return operator


def licence_status(
    reg: Registry, who: Principal, system: str, at: datetime | None = None
) -> licensing.LicenceStatus:
    allow(reg, who, "licences.manage")
    with reg.store() as store:
        return licensing.status(store, system, at=at)
