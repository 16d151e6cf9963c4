"""The JSON shapes of operation results: one definition, used by the CLI's
``--json`` output and by the HTTP API (``xinyong.web``), so the two never drift.

Answers that are models (a check, a score, an explanation, a principal) carry
their own ``public()``/``model_dump()``; the shapes here are the ones the CLI
used to assemble inline."""

from __future__ import annotations

from typing import Any

from xinyong.timeutil import to_local_iso


def import_result(result: Any, *, batches: bool = False) -> dict[str, Any]:
    """`xinyong import --json`: {"accepted", "duplicates", "rejected", "rejects_file"}."""
    payload: dict[str, Any] = {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "rejected": result.rejected,
        "rejects_file": str(result.rejects_file) if result.rejects_file else None,
    }
    if batches:
        payload["batches"] = result.batches
    return payload


def reject(rej: Any) -> dict[str, Any]:
    """One rejected record with its field-level reason (as in the rejects report)."""
    out: dict[str, Any] = rej.as_dict()
    return out


def pack_rows(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """`xinyong packs list --json` from (system, version, effective_from, sha256,
    installed_at) rows."""
    return [
        {
            "system": s,
            "version": v,
            "effective_from": str(e),
            "sha256": h,
            "installed_at": to_local_iso(i),
        }
        for s, v, e, h, i in rows
    ]


def lint_result(file: str, pack: Any, findings: list[Any]) -> dict[str, Any]:
    """`xinyong packs lint --json`."""
    errors = [f for f in findings if f.level == "error"]
    return {
        "file": file,
        "system": pack.system,
        "errors": len(errors),
        "warnings": len(findings) - len(errors),
        "findings": [
            {"level": f.level, "rule_id": f.rule_id, "message": f.message} for f in findings
        ],
    }


def installed_pack(pack: Any, new: bool) -> dict[str, Any]:
    """`xinyong packs install --json`."""
    return {
        "system": pack.system,
        "version": pack.meta.version,
        "effective_from": str(pack.meta.effective_from),
        "installed": new,
    }


def source_rows(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """`xinyong sources list --json` from (source_id, kind, registered_at) rows."""
    return [{"source_id": s, "kind": k, "registered_at": to_local_iso(t)} for s, k, t in rows]


def chain_report(report: Any) -> dict[str, Any]:
    """`xinyong audit verify --json`."""
    return {
        "ok": report.ok,
        "entries": report.entries,
        "first_bad": report.first_bad,
        "reason": report.reason,
    }


def purge_result(stones: list[Any], dry_run: bool) -> dict[str, Any]:
    """`xinyong purge --json`."""
    return {
        "dry_run": dry_run,
        "purged": 0 if dry_run else len(stones),
        "tombstones": [t.public() for t in stones],
    }


def compaction(done: Any) -> dict[str, Any]:
    """`xinyong compact --json` and ``POST /v1/compact``."""
    return {
        "records": done.records,
        "row_groups_before": done.row_groups_before,
        "row_groups_after": done.row_groups_after,
        "seconds": round(done.seconds, 3),
        "rewritten": done.rewritten,
    }


def run_rows(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Evaluation runs from (run_id, as_of, known_at, evaluated_at, last_batch) rows."""
    return [
        {
            "run_id": r,
            "as_of": to_local_iso(a),
            "known_at": to_local_iso(k),
            "evaluated_at": to_local_iso(e),
            "last_batch": b,
        }
        for r, a, k, e, b in rows
    ]
