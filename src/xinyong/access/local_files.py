"""The audit and principal files a PostgreSQL registry kept in its local folder
before schema revision 0003 (``<state dir>/pg/HOST-PORT-DATABASE/registry.*``, one
set per host), imported into its tables by `xinyong migrate` on each host.

Fail closed, never a silent loss: until a host's files are imported, every command
on that host refuses the registry, naming the file (``shared_state.refuse_local_file``).
An import is one transaction; the file is then renamed ``*.imported`` and kept.

- The audit file is verified first; a broken chain is refused (named, not imported).
  Its entries are appended to the database's chain with their own time, principal,
  action, subject, purpose, outcome and detail, re-chained (new ``seq``, ``prev`` and
  ``hash``), after one ``audit.import`` entry naming the file, the host, how many
  entries it held and its last hash: whoever keeps the renamed file can check both
  the file's own chain and that each of its entries is in the database's. A file
  already imported (its ``audit.import`` entry is there: a rename that failed after
  the commit) is only renamed. Files from several hosts land one after another, each
  in its own order.
- The principal book's principals are added; one the database already has must
  have the same role and scope (else refused, naming it), and gains the keys it
  lacks and the revocations the file records (a revocation is never undone).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from xinyong.access.principals import LOCAL_OPERATOR, PrincipalBook, principals_path
from xinyong.audit.chain import (
    GENESIS,
    AuditChain,
    Chained,
    PgLog,
    audit_path,
    chain,
    lock_chain,
)
from xinyong.ledger.location import redacted
from xinyong.ledger.shared_state import transaction
from xinyong.ledger.store import RegistryError
from xinyong.timeutil import now_utc, to_local_iso


def import_local_files(url: str) -> list[str]:
    """Import this host's audit and principal files of the registry at `url` (at
    schema head); returns what was done."""
    done = []
    audit = audit_path(url)
    if audit.exists():
        done.append(_import_chain(url, audit))
    book = principals_path(url)
    if book.exists():
        done.append(_import_book(url, book))
    return done


def _kept(path: Path) -> Path:
    """Rename an imported file to ``*.imported`` (a free name), keeping it."""
    target = path.with_name(path.name + ".imported")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.imported.{n}")
    path.rename(target)
    return target


def _import_chain(url: str, path: Path) -> str:
    local = AuditChain(path)
    report = local.verify()
    if not report.ok:
        raise RegistryError(
            f"{path}: its audit chain is broken at entry {report.first_bad} ({report.reason}); "
            f"not imported into {redacted(url)}: restore the file from a backup first"
        )
    entries = list(local.entries())
    head = entries[-1].hash if entries else GENESIS
    mark = {"file": str(path), "host": socket.gethostname(), "entries": len(entries), "head": head}
    log = PgLog(url)
    with transaction(url, log.WHAT) as conn:
        lock_chain(conn)
        t = log.table
        found = conn.execute(sa.select(t.c.detail).where(t.c.action == "audit.import"))
        if any(_same_import(detail, head, len(entries)) for (detail,) in found):
            what = "already imported"
        else:
            events: list[dict[str, Any]] = [
                {
                    "principal": LOCAL_OPERATOR,
                    "role": "operator",
                    "action": "audit.import",
                    "outcome": "done",
                    "detail": mark,
                }
            ]
            events += [e.model_dump(exclude={"seq", "prev", "hash"}) for e in entries]

            def make(seq: int, prev: str) -> list[Chained]:
                return chain(events, to_local_iso(now_utc()) or "", seq, prev)

            log.extend_in(conn, make)
            what = f"imported {len(entries)} audit entries"
    return f"{what} from {path} (kept as {_kept(path)})"


def _same_import(detail: str, head: str, entries: int) -> bool:
    mark = json.loads(detail)
    return bool(mark.get("head") == head and mark.get("entries") == entries)


def _import_book(url: str, path: Path) -> str:
    local = PrincipalBook(path).load()
    added = keys = 0
    with PrincipalBook(url).editing() as book:
        for name, theirs in local.items():
            ours = book.get(name)
            if ours is None:
                book[name] = theirs
                added += 1
                continue
            scope = ("role", "source", "services", "subject_id")
            if any(getattr(ours, f) != getattr(theirs, f) for f in scope):
                raise RegistryError(
                    f"{path}: principal {name!r} has another role or scope than the one in "
                    f"{redacted(url)}; not imported: rename or revoke one of them first"
                )
            have = {k.key_id: k for k in ours.keys}
            for key in theirs.keys:
                mine = have.get(key.key_id)
                if mine is None:
                    ours.keys.append(key)
                    keys += 1
                elif (mine.salt, mine.digest) != (key.salt, key.digest):
                    raise RegistryError(
                        f"{path}: key {key.key_id!r} of principal {name!r} differs from the "
                        f"one in {redacted(url)}; not imported"
                    )
                elif key.revoked_at and not mine.revoked_at:
                    mine.revoked_at = key.revoked_at
            if theirs.revoked_at and not ours.revoked_at:
                ours.revoked_at = theirs.revoked_at
    return f"imported {added} principals and {keys} more keys from {path} (kept as {_kept(path)})"
