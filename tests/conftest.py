"""Shared fixtures and helpers.

`make_person_id` / `make_uscc` compute valid identifiers straight from the
standards' definitions (GB 11643-1999 ISO 7064 MOD 11-2; GB 32100-2015 with the
embedded GB 11714 organization code), independently of xinyong's own code, so
that tests of the identifier module do not test it against itself.

    from conftest import make_person_id, make_uscc   # in a test module
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import httpx
import pytest

from xinyong.ledger.store import Store

_RIC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def ric_check(first17: str) -> str:
    """GB 11643-1999 check character: (12 - sum(d_i * w_i) mod 11) mod 11, 10 -> X."""
    s = sum(int(c) * w for c, w in zip(first17, _RIC_WEIGHTS, strict=True))
    c = (12 - s % 11) % 11
    return "X" if c == 10 else str(c)


def make_person_id(born: date = date(1990, 5, 17), seq: int = 123, address: str = "371082") -> str:
    """A valid 18-digit resident identity number (address 371082 = Rongcheng, Shandong)."""
    first17 = f"{address}{born:%Y%m%d}{seq:03d}"
    return first17 + ric_check(first17)


def org_check(body8: str) -> str:
    """GB 11714 check character: 11 - sum(v_i * w_i) mod 11; 10 -> X, 11 -> 0; A=10..Z=35."""
    s = sum(
        (int(c) if c.isdigit() else ord(c) - 55) * w
        for c, w in zip(body8, _ORG_WEIGHTS, strict=True)
    )
    c = 11 - s % 11
    return {10: "X", 11: "0"}.get(c, str(c))


def uscc_check(first17: str) -> str:
    """GB 32100-2015 check character: 31 - sum(v_i * 3^i mod 31) mod 31, in its alphabet."""
    s = sum(_USCC_CHARS.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_CHARS[(31 - s % 31) % 31]


def make_uscc(org_body: str = "MA3C4B5D", prefix: str = "91371082") -> str:
    """A valid Unified Social Credit Code with a valid embedded organization code."""
    first17 = prefix + org_body + org_check(org_body)
    return first17 + uscc_check(first17)


#: A PostgreSQL server the tests may create databases on (XINYONG_TEST_PG; default the
#: local socket as user postgres). Each test's database is its own, dropped after.
PG_SERVER = os.environ.get("XINYONG_TEST_PG", "postgresql://postgres@/postgres")

#: Where a registry lives: the CLI tests that matter run on both (``registry_at``).
BACKENDS = ("duckdb", "postgresql")


@contextmanager
def pg_database() -> Iterator[str]:
    """A fresh, uniquely named database on PG_SERVER (its URL), dropped afterwards."""
    import psycopg

    name = f"xinyong_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_SERVER, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{PG_SERVER.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def registry_at(backend: str, folder: Path) -> Iterator[str]:
    """Where a test's registry goes: a file in `folder`, or a fresh PostgreSQL database."""
    if backend == "postgresql":
        with pg_database() as url:
            yield url
    else:
        yield str(folder / "r.duckdb")


@pytest.fixture(autouse=True, scope="session")
def _state_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A PostgreSQL registry's side files (audit, principals, rejects reports) in a
    temporary folder, not the user's."""
    os.environ["XINYONG_STATE_DIR"] = str(tmp_path_factory.mktemp("state"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh registry file in tmp_path."""
    with Store(tmp_path / "registry.duckdb") as st:
        yield st


@pytest.fixture
def person_id() -> str:
    return make_person_id()


@pytest.fixture
def org_id() -> str:
    return make_uscc()


#: The console script of this interpreter's environment.
XINYONG = str(Path(sys.executable).with_name("xinyong"))


@contextmanager
def serving(url: str, **env: str) -> Iterator[httpx.Client]:
    """`xinyong serve --workers 2` on the registry at `url` (extra environment in
    `env`), as a real process on a free port; a client once it is ready, the server
    stopped afterwards."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = subprocess.Popen(
        [XINYONG, "serve", "--workers", "2", "--port", str(port), "--db", url],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.5)
        yield client
    finally:
        client.close()
        server.terminate()
        server.communicate(timeout=60)
