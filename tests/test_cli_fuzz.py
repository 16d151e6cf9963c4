"""Issue 6: random argument strings, instants, paths and file contents thrown at the
CLI. Whatever comes in, the command ends with exit 0, 1 (refused input) or 2
(usage) and prints no traceback. In-process (typer's CliRunner) for speed, plus a
few real processes. Few examples, derandomized, under CI (`CI=true`)."""

from __future__ import annotations

import os
import subprocess
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import XINYONG, make_person_id
from xinyong.cli import _register, app

_register()
runner = CliRunner()
CI = os.environ.get("CI") == "true"
FUZZ = settings(
    max_examples=20 if CI else 60,
    deadline=None,
    derandomize=CI,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

PERSON = make_person_id(date(1980, 2, 29), 31)
COURT = "court:371082-rongcheng"


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A registry and a zoo of things that are not one."""
    tmp = tmp_path_factory.mktemp("fuzz")
    db = tmp / "r.duckdb"
    assert runner.invoke(app, ["init", "--db", str(db)]).exit_code == 0
    assert (
        runner.invoke(app, ["sources", "add", COURT, "--kind", "court", "--db", str(db)]).exit_code
        == 0
    )
    (tmp / "typo.csv").write_text("a,b\n1,2\n")
    (tmp / "folder").mkdir()
    return {
        "registry": db,
        "csv": tmp / "typo.csv",
        "folder": tmp / "folder",
        "missing": tmp / "missing.duckdb",
        "missing folder": tmp / "no" / "r.duckdb",
        "tmp": tmp,
    }


def _no_traceback(args: list[str]) -> None:
    result = runner.invoke(app, args)
    output = (result.stdout or "") + (result.stderr or "")
    assert result.exit_code in (0, 1, 2), (args, output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args,
        repr(result.exception),
    )
    assert "Traceback" not in output, (args, output)


text = st.text(max_size=40)
instants = st.one_of(
    text,
    st.datetimes().map(lambda d: d.isoformat()),
    st.dates().map(lambda d: d.isoformat()),
    st.sampled_from(["0001-01-01", "9999-12-31T23:59:59-12:00", "2024-02-30", "2026-06-01"]),
)
subjects = st.one_of(text, st.just(PERSON), st.just("110105194912310021"))
services = st.one_of(text, st.sampled_from(["flight", "rail.high_speed", "hotel.deposit_free"]))
systems = st.one_of(text, st.sampled_from(["judicial", "rongcheng", "financial", "commercial"]))
places = st.sampled_from(["registry", "csv", "folder", "missing", "missing folder"])


@st.composite
def commands(draw: st.DrawFn) -> list[str]:
    kind = draw(st.sampled_from(["check", "score", "explain", "packs", "sources", "evaluate"]))
    if kind == "check":
        args = ["check", draw(subjects), draw(services)]
    elif kind == "score":
        args = ["score", draw(subjects), "--system", draw(systems)]
    elif kind == "explain":
        args = ["explain", draw(subjects), "--system", draw(systems)]
    elif kind == "packs":
        args = ["packs", draw(st.sampled_from(["list", "show"]))]
        if args[1] == "show":
            args.append(draw(systems))
    elif kind == "sources":
        args = ["sources", "add", draw(text), "--kind", draw(st.one_of(text, st.just("court")))]
    else:  # evaluating the registry takes seconds: only where it is refused early
        return ["evaluate", "--as-of", draw(instants), "--known-at", "2199-01-01"]
    if kind in ("check", "score", "explain"):
        for option in ("--at", "--known-at"):
            if draw(st.booleans()):
                args += [option, draw(instants)]
    return args + draw(st.lists(text, max_size=2))


@FUZZ
@given(command=commands(), where=places)
def test_random_arguments_never_end_in_a_traceback(
    place: dict[str, Path], command: list[str], where: str
) -> None:
    _no_traceback([*command, "--db", str(place[where])])


@FUZZ
@given(
    content=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300),
        st.lists(
            st.dictionaries(
                st.sampled_from(["record_id", "subject_id", "type", "occurred_at", "source"]),
                st.one_of(text, st.integers(), st.none()),
            ),
            max_size=3,
        ).map(lambda rows: "\n".join(map(repr, rows))),
    ),
    suffix=st.sampled_from([".jsonl", ".json", ".csv", ".parquet", ".txt"]),
    bom=st.booleans(),
)
def test_random_files_never_end_in_a_traceback(
    place: dict[str, Path], content: bytes | str, suffix: str, bom: bool
) -> None:
    path = place["tmp"] / f"input{suffix}"
    data = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    _no_traceback(["import", str(path), "--db", str(place["registry"])])
    _no_traceback(["packs", "lint", str(path)])


@pytest.mark.parametrize(
    "args",
    [
        ["check", PERSON, "flight", "--at", "0001-01-01"],
        ["packs", "install", "."],
        ["import", "/dev/null"],
    ],
)
def test_real_processes_end_in_one_line(place: dict[str, Path], args: list[str]) -> None:
    env = {**os.environ, "XINYONG_DB": str(place["registry"])}
    done = subprocess.run(
        [XINYONG, *args], env=env, capture_output=True, text=True, timeout=120, cwd=place["tmp"]
    )
    assert done.returncode in (1, 2) and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
