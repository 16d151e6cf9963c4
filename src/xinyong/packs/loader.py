"""Reading packs from YAML, and the packs installed in a registry."""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path

from xinyong.ledger.store import Store
from xinyong.packs.schema import Pack
from xinyong.problems import load_document
from xinyong.timeutil import local_date, now_utc


class PackError(ValueError):
    """A pack that does not parse or validate; the message names file and place."""


def load_pack(source: str | Path, *, text: str | None = None) -> Pack:
    """Load and validate a pack from a file (or from ``text``, named ``source``)."""
    return load_document(Pack, source, error=PackError, kind="pack", text=text)


def shipped_pack_paths() -> list[Path]:
    root = resources.files("xinyong.packs").joinpath("shipped")
    return sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml"))


def install_pack(store: Store, path: str | Path) -> Pack:
    """Validate, lint and store a pack version. Lint errors refuse it."""
    from xinyong.packs.lint import lint

    text = Path(path).read_text("utf-8")
    pack = load_pack(path, text=text)
    findings = lint(pack)
    errors = [f for f in findings if f.level == "error"]
    if errors:
        raise PackError(
            f"{path}: the linter refuses this pack:\n" + "\n".join(f"  {f}" for f in errors)
        )
    digest = hashlib.sha256(text.encode()).hexdigest()
    existing = store.sql.execute(
        "SELECT sha256 FROM packs WHERE system = ? AND version = ?",
        [pack.system, pack.meta.version],
    ).fetchone()
    if existing is not None:
        if existing[0] != digest:
            raise PackError(
                f"{path}: {pack.system} version {pack.meta.version} is installed with other"
                " content; give the changed pack a new version"
            )
        return pack
    from xinyong.ledger import generation

    generation.advance(store.path)  # a published snapshot stops answering
    store.sql.execute(
        "INSERT INTO packs VALUES (?, ?, ?, ?, ?, ?)",
        [pack.system, pack.meta.version, pack.meta.effective_from, text, digest, now_utc()],
    )
    return pack


def installed_packs(store: Store, at: datetime | None = None) -> list[Pack]:
    """The pack version in force for each system at ``at`` (default: the newest).

    Effective dates are Asia/Shanghai local dates: a pack in force from 2017-05-01
    applies from 2017-05-01 00:00 local (2017-04-30 16:00 UTC), not from the UTC date.
    """
    rows = store.sql.execute(
        "SELECT system, version, effective_from, body FROM packs ORDER BY system, effective_from"
    ).fetchall()
    chosen: dict[str, tuple[str, str]] = {}
    day = None if at is None else local_date(at)
    for system, version, effective_from, body in rows:
        if day is None or effective_from <= day:
            chosen[system] = (version, body)
    # A system whose first version is not yet in force at `at` has no pack then.
    return [_parsed(f"{system}@{version}", body) for system, (version, body) in chosen.items()]


def every_installed_pack(store: Store) -> list[Pack]:
    """Every installed version of every system (oldest first per system)."""
    rows = store.sql.execute(
        "SELECT system, version, body FROM packs ORDER BY system, effective_from"
    ).fetchall()
    return [_parsed(f"{system}@{version}", body) for system, version, body in rows]


@lru_cache(maxsize=64)
def _parsed(name: str, body: str) -> Pack:
    """An installed pack's text parsed once per process: packs are frozen models and
    the text is the key, so a new version is parsed anew. Parsing the YAML of every
    pack on each check cost ~70 ms per pack (a long-lived server asks it per request)."""
    return load_pack(name, text=body)


def first_in_force(store: Store) -> dict[str, date]:
    """Each installed system's earliest effective date (local), to tell "not yet in
    force" from "not installed"."""
    rows = store.sql.execute(
        "SELECT system, min(effective_from) FROM packs GROUP BY system"
    ).fetchall()
    return {str(system): first for system, first in rows}
