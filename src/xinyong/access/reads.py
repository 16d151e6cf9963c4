"""Operations that the CLI once ran straight on the store (packs list/show/lint,
sources list, evaluation runs) and the bulk check: through the gate like every
other operation, so the HTTP API authorizes and audits them the same way.
``access.operations`` re-exports them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xinyong.access.gate import Registry, allow, audit_event, domain_refusals, normalize_subject
from xinyong.access.principals import Principal
from xinyong.lazy import lazy
from xinyong.timeutil import now_utc, to_local_iso

if TYPE_CHECKING:
    from xinyong.process import licensing
    from xinyong.process import purge as retention_purge
else:
    # Loaded on first use: operations re-exports this module, and a check answered
    # from the snapshot must not import the store (DuckDB) through it.
    licensing = lazy("xinyong.process.licensing")
    retention_purge = lazy("xinyong.process.purge")

#: The most subjects one bulk check answers (issue 11: up to 100 k per request).
MAX_BULK_CHECKS = 100_000


class NotFound(LookupError, ValueError):
    """An id the registry does not hold (a pack version, a run); HTTP 404."""


def list_packs(reg: Registry, who: Principal) -> list[tuple[Any, ...]]:
    """Installed pack versions: (system, version, effective_from, sha256, installed_at)."""
    allow(reg, who, "packs.read")
    with reg.store(read_only=True) as store:
        rows: list[tuple[Any, ...]] = store.sql.execute(
            "SELECT system, version, effective_from, sha256, installed_at FROM packs "
            "ORDER BY system, effective_from"
        ).fetchall()
    return rows


def pack_text(reg: Registry, who: Principal, system: str, version: str | None = None) -> str:
    """The YAML of an installed pack (default: its newest version)."""
    allow(reg, who, "packs.read")
    with reg.store(read_only=True) as store:
        if version is None:
            row = store.sql.execute(
                "SELECT version, body FROM packs WHERE system = ? "
                "ORDER BY effective_from DESC LIMIT 1",
                [system],
            ).fetchone()
        else:
            row = store.sql.execute(
                "SELECT version, body FROM packs WHERE system = ? AND version = ?",
                [system, version],
            ).fetchone()
    if row is None:
        raise NotFound(
            f"no pack {system!r}" + (f" version {version!r}" if version else "") + " is installed"
        )
    return str(row[1])


def show_pack(reg: Registry, who: Principal, system: str, version: str | None = None) -> Any:
    """The installed pack as a model (`packs show --json`)."""
    from xinyong.packs import load_pack

    text = pack_text(reg, who, system, version)
    return load_pack(f"{system}@{version or 'newest'}", text=text)


def lint_pack(
    reg: Registry, who: Principal, path: Path, *, text: str | None = None
) -> tuple[Any, list[Any]]:
    """Load a pack file (or its text) and lint it; a pack that cannot be read raises
    ValueError naming the place."""
    from xinyong.packs import load_pack
    from xinyong.packs.lint import lint

    allow(reg, who, "packs.read")
    pack = load_pack(path, text=text)
    return pack, lint(pack)


def list_sources(reg: Registry, who: Principal) -> list[tuple[Any, ...]]:
    allow(reg, who, "sources.manage")
    with reg.store(read_only=True) as store:
        rows: list[tuple[Any, ...]] = store.sql.execute(
            "SELECT source_id, kind, registered_at FROM sources ORDER BY source_id"
        ).fetchall()
    return rows


def list_runs(reg: Registry, who: Principal) -> list[tuple[Any, ...]]:
    """The evaluation runs, newest first."""
    allow(reg, who, "evaluate")
    with reg.store(read_only=True) as store:
        rows: list[tuple[Any, ...]] = store.sql.execute(
            "SELECT run_id, as_of, known_at, evaluated_at, last_batch FROM eval_runs "
            "ORDER BY run_id DESC"
        ).fetchall()
    return rows


def result_counts(store: Any, as_of: Any) -> dict[str, Any]:
    """Per system: scores, list entries, active entries, consequences of the latest run."""
    systems: dict[str, dict[str, int]] = {}
    queries = {
        "scores": ("SELECT system, count(*) FROM scores GROUP BY system", []),
        "entries": ("SELECT system, count(*) FROM list_entries GROUP BY system", []),
        "active": (
            "SELECT system, count(*) FROM list_entries WHERE start_at <= ? "
            "AND (end_at IS NULL OR end_at > ?) GROUP BY system",
            [as_of, as_of],
        ),
        "consequences": ("SELECT system, count(*) FROM consequences GROUP BY system", []),
    }
    for key, (sql, params) in queries.items():
        for system, n in store.sql.execute(sql, params).fetchall():
            systems.setdefault(system, {"scores": 0, "entries": 0, "active": 0, "consequences": 0})
            systems[system][key] = n
    return {"systems": systems}


#: The whole consequence index of the latest run, per registry file: a long-lived
#: process (the HTTP API) answers bulk checks from memory. Keyed by the run and the
#: last batch, so a new evaluation or import is never answered from a stale copy.
_INDEXES: dict[str, tuple[tuple[Any, ...], Any]] = {}


def _index(store: Any, db: Path) -> Any:
    from xinyong.checks import ConsequenceIndex
    from xinyong.checks.index import latest_run

    run = latest_run(store)
    last = store.sql.execute(
        "SELECT (SELECT max(batch_id) FROM batches), (SELECT max(installed_at) FROM packs)"
    )
    key = (run, tuple(last.fetchone() or ()))
    cached = _INDEXES.get(str(db))
    if cached is not None and cached[0] == key:
        return cached[1]
    index = ConsequenceIndex.load(store)
    _INDEXES[str(db)] = (key, index)
    return index


def check_many(
    reg: Registry,
    who: Principal,
    subjects: Sequence[str],
    service: str,
    *,
    at: datetime | None = None,
    known_at: datetime | None = None,
) -> list[Any]:
    """One service checked for many subjects at once: the same gates as ``check``
    (permission per subject, purge guard, licence), answered from the materialized
    index when it is current (else replayed per subject), and every answer audited
    (one entry per subject, written with one flush)."""
    from xinyong.access.operations import _licence_gate_for_service
    from xinyong.checks import check as ask
    from xinyong.checks.questions import _check_service, _fast_path

    if len(subjects) > MAX_BULK_CHECKS:
        raise ValueError(f"subjects: {len(subjects)} given, at most {MAX_BULK_CHECKS} per request")
    normalized: list[str] = []
    seen: dict[str, str] = {}
    for i, text in enumerate(subjects):
        if text not in seen:
            try:
                seen[text] = normalize_subject(text)
            except ValueError as exc:
                raise ValueError(f"subjects[{i}]: {exc}") from None
        normalized.append(seen[text])
    _check_service(service)
    for subject in dict.fromkeys(normalized):
        allow(reg, who, "check", subject=subject, service=service)
    when = at or now_utc()
    with (
        reg.store(read_only=True, needs_packs=True) as store,
        domain_refusals(reg, who, "check", None),
    ):
        if retention_purge.purged_any(store):
            for subject in dict.fromkeys(normalized):
                retention_purge.guard(store, subject, when, known_at)
        _licence_gate_for_service(store, service, when, known_at)
        if _fast_path(store, when, known_at):
            index = _index(store, reg.db)
            answers = [index.answer(subject, service, when) for subject in normalized]
        else:
            answers = [ask(store, s, service, at=when, known_at=known_at) for s in normalized]
    known = to_local_iso(known_at)
    reg.audit.append_many(
        [
            {
                "principal": who.name,
                "role": who.role,
                "action": "check",
                "outcome": "allowed",
                "subject": a.subject_id,
                "detail": {
                    k: v
                    for k, v in (
                        ("service", service),
                        ("decision", a.decision),
                        ("at", a.at),
                        ("known_at", known),
                        ("bulk", True),
                    )
                    if v is not None
                },
            }
            for a in answers
        ]
    )
    return answers


__all__ = [
    "MAX_BULK_CHECKS",
    "NotFound",
    "audit_event",
    "check_many",
    "lint_pack",
    "list_packs",
    "list_runs",
    "list_sources",
    "pack_text",
    "result_counts",
    "show_pack",
]
