"""The registry's core commands: init, migrate, sources, import, evaluate, check,
score, explain, packs. Readers (check, score, explain, packs list/show, sources
list) open the registry read-only, so that any number of them run at once."""

from __future__ import annotations

import time
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from xinyong.cli import app
from xinyong.cli.acting import AsOption, CaseOption, KeyOption, acting, refusals
from xinyong.cli.common import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    console,
    emit_json,
    fail,
    instant,
    refused_input,
)
from xinyong.ledger.location import display, is_pg
from xinyong.timeutil import now_utc, to_local_iso

sources_app = typer.Typer(
    help="Registered sources (courts, cities, lenders, ...).", no_args_is_help=True
)
packs_app = typer.Typer(
    help="Rule packs: list, show, lint, install, compile.", no_args_is_help=True
)
app.add_typer(sources_app, name="sources")
app.add_typer(packs_app, name="packs")

AtOption = Annotated[
    str | None,
    typer.Option(
        "--at", help="Instant asked about, ISO 8601 (a date is 00:00 Asia/Shanghai; default now)."
    ),
]
KnownAtOption = Annotated[
    str | None,
    typer.Option("--known-at", help="Use only what the registry knew then (ISO 8601, not future)."),
]


def _known_at(value: str | None) -> datetime | None:
    """--known-at: what the registry knew then, so never a future instant."""
    known_t = instant(value, "--known-at")
    if known_t is not None and known_t > now_utc():
        fail("--known-at lies in the future; the registry cannot know what it has not seen", 2)
    return known_t


@app.command()
def init(db: DbOption = DEFAULT_DB, json: JsonOption = False) -> None:
    """Create a registry with the shipped rule packs installed."""
    from xinyong.access import operations as ops
    from xinyong.ledger.store import Store
    from xinyong.packs import shipped_pack_paths

    # Creates a missing (or empty) file; refuses an existing file that is not a registry.
    with refused_input(), Store(db):
        pass
    reg, who = acting(db, None, None)
    with refused_input(), refusals(), reg.holding():
        installed = [ops.install_pack(reg, who, path) for path in shipped_pack_paths()]
    payload = {
        "db": display(db),
        "packs": [{"system": p.system, "version": p.meta.version} for p in installed],
    }
    if json:
        emit_json(payload)
    else:
        names = ", ".join(f"{p.system} {p.meta.version}" for p in installed)
        console.print(f"Registry [bold]{display(db)}[/] ready with packs: {names}")


@app.command()
def migrate(db: DbOption = DEFAULT_DB, json: JsonOption = False) -> None:
    """Upgrade a registry made by an older xinyong to this schema version (back it up
    first). Nothing else ever changes a registry's schema."""
    from xinyong.ledger.store import SCHEMA_VERSION
    from xinyong.ledger.store import migrate as run_migrations

    steps = run_migrations(db)
    if json:
        emit_json(
            {
                "db": display(db),
                "schema_version": SCHEMA_VERSION,
                "steps": [{"from": v, "to": v + 1, "what": w} for v, w in steps],
            }
        )
        return
    for version, what in steps:
        console.print(f"schema {version} -> {version + 1}: {what}", highlight=False)
    state = "migrated to" if steps else "already at"
    console.print(f"Registry {db} {state} schema version {SCHEMA_VERSION}", highlight=False)


@app.command()
def compact(
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Rewrite the ledger in subject order, so that a replayed check, score or
    explain finds one subject's records without reading the whole ledger (DuckDB
    registries; run it after large imports). One transaction: the same records,
    checked before it commits."""
    from xinyong.access import operations as ops

    reg, who = acting(db, as_, key)
    status = nullcontext() if json else console.status("compacting the ledger")
    with refused_input(), refusals(), reg.holding(), status:
        done = ops.compact(reg, who)
    if json:
        from xinyong.access import shapes

        emit_json(shapes.compaction(done))
        return
    if not done.rewritten:
        console.print(
            f"{done.records:,} records already in subject order (nothing imported since "
            "the last compaction)",
            highlight=False,
        )
        return
    console.print(
        f"compacted {done.records:,} records in subject order in {done.seconds:.1f} s "
        f"({done.row_groups_before} row groups before, {done.row_groups_after} after)",
        highlight=False,
    )


@sources_app.command("add")
def sources_add(
    source_id: Annotated[str, typer.Argument(help="e.g. court:371082-rongcheng")],
    kind: Annotated[
        str, typer.Option("--kind", help="court, city, lender, utility, regulator, adjudicator")
    ],
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Register a source that may report records of the types its kind allows."""
    from xinyong.access import operations as ops

    reg, who = acting(db, as_, key)
    with refused_input(), refusals():
        ops.register_source(reg, who, source_id, kind)
    if json:
        emit_json({"source_id": source_id, "kind": kind})
    else:
        console.print(f"Source [bold]{source_id}[/] registered as {kind}")


@sources_app.command("list")
def sources_list(db: DbOption = DEFAULT_DB, json: JsonOption = False) -> None:
    """List registered sources."""
    from xinyong.access import operations as ops

    reg, who = acting(db, None, None)
    with refused_input(), refusals():
        rows = ops.list_sources(reg, who)
    if json:
        from xinyong.access import shapes

        emit_json(shapes.source_rows(rows))
        return
    table = Table("source", "kind", "registered")
    for s, k, t in rows:
        table.add_row(s, k, to_local_iso(t))
    console.print(table)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="JSON Lines, CSV or Parquet file of records")],
    strict: Annotated[
        bool, typer.Option("--strict", help="Refuse the whole file on any reject.")
    ] = False,
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--rejects",
            help="Where to write rejects (JSON Lines; default: next to the registry, "
            "named after the batch).",
        ),
    ] = None,
    batch_rows: Annotated[
        int | None,
        typer.Option(
            "--batch-rows",
            min=1,
            help="Commit every N rows as a batch of its own, each reported as it commits "
            "(a rerun skips them); default: the whole file at once.",
        ),
    ] = None,
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Import records: valid ones in one transaction, rejects to a report file.

    Exits 1 when any record was rejected (and, with --strict, nothing was written).
    """
    from xinyong.access import operations as ops

    if not file.exists():
        fail(f"{file}: no such file")
    if batch_rows is not None and strict:
        fail("--strict refuses the whole file; it cannot be combined with --batch-rows", 2)

    def committed(batch: dict[str, Any]) -> None:
        if not json:
            console.print(
                f"committed batch {batch['batch_id']}: {batch['rows']} rows, accepted "
                f"{batch['accepted']}, duplicates {batch['duplicates']}, rejected "
                f"{batch['rejected']}",
                highlight=False,
            )

    reg, who = acting(db, as_, key)
    with refused_input(), refusals():
        result = ops.import_records(
            reg,
            who,
            file,
            strict=strict,
            rejects_path=rejects,
            progress=not json,
            batch_rows=batch_rows,
            on_batch=committed,
        )
    from xinyong.access import shapes

    payload = shapes.import_result(result, batches=batch_rows is not None)
    if json:
        emit_json(payload)
    else:
        console.print(
            f"accepted {result.accepted}, duplicates {result.duplicates}, "
            f"rejected {result.rejected}"
            + (f" (see {result.rejects_file})" if result.rejects_file else "")
        )
        for reject in result.rejects[:10]:
            console.print(
                f"  [red]rejected[/] {reject.record_id or '-'} (row {reject.row}): "
                f"{reject.field}: {reject.reason}",
                highlight=False,
            )
        if strict and result.rejected:
            console.print("[red]--strict: nothing was imported[/]")
    if result.rejected:
        raise typer.Exit(1)


@app.command()
def evaluate(
    as_of: Annotated[str | None, typer.Option("--as-of", help="Valid time (default now).")] = None,
    known_at: KnownAtOption = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="Where to evaluate: duckdb (in the registry; on a PostgreSQL registry, in"
            " it), postgres (--pg-url) or spark;"
            " the results are written to the registry alike.",
        ),
    ] = "duckdb",
    spark_master: Annotated[
        str | None, typer.Option("--spark-master", help="Spark master (default local[2]).")
    ] = None,
    pg_url: Annotated[
        str | None,
        typer.Option(
            "--pg-url",
            envvar="XINYONG_PG_URL",
            help="PostgreSQL database to evaluate in (postgresql://user@host:port/db); "
            "a schema of its own is created there and dropped afterwards.",
        ),
    ] = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Evaluate every subject again, even when the last run could be extended"
            " (by default only the subjects changed since it are recomputed).",
        ),
    ] = False,
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Evaluate every installed pack and materialize the results (incrementally when
    the last run can be extended: the output's mode and why say which)."""
    from xinyong.access import operations as ops

    as_of_t = instant(as_of, "--as-of") or now_utc()
    known_t = _known_at(known_at)
    started = time.perf_counter()
    reg, who = acting(db, as_, key)
    with refused_input(), refusals(), reg.holding():
        with nullcontext() if json else console.status("evaluating"):
            outcome = ops.evaluate_run(
                reg,
                who,
                as_of=as_of_t,
                known_at=known_t,
                engine=engine,
                pg_url=pg_url,
                spark_master=spark_master,
                full=full,
            )
        run_id = outcome.run_id
        with reg.store() as store:
            counts = _result_counts(store, as_of_t)
    payload = {
        "run_id": run_id,
        "as_of": to_local_iso(as_of_t),
        "known_at": to_local_iso(known_t) if known_t else None,
        "seconds": round(time.perf_counter() - started, 3),
        # the default evaluates in the registry: on PostgreSQL that is PostgreSQL
        "engine": "postgres" if engine == "duckdb" and is_pg(db) else engine,
        "mode": outcome.mode,
        "why": outcome.why,
        "subjects_recomputed": outcome.subjects_recomputed,
        # full, or how an incremental run recomputed: compiled plans, evaluated, none
        "recomputed_by": outcome.how,
        **counts,
    }
    if json:
        emit_json(payload)
        return
    table = Table("system", "scores", "list entries", "active entries", "consequences")
    for system, row in counts["systems"].items():
        table.add_row(
            system, *(str(row[k]) for k in ("scores", "entries", "active", "consequences"))
        )
    console.print(table)
    console.print(f"run {run_id} as of {payload['as_of']} in {payload['seconds']} s")
    console.print(
        f"{outcome.mode} evaluation ({outcome.why}); "
        f"{outcome.subjects_recomputed} subjects recomputed",
        highlight=False,
    )


def _result_counts(store: Any, as_of: Any) -> dict[str, Any]:
    from xinyong.access.reads import result_counts

    return result_counts(store, as_of)


@app.command()
def check(
    subject: Annotated[str, typer.Argument(help="Identity number or unified social credit code")],
    service: Annotated[str, typer.Argument(help="A service from the catalog, e.g. flight")],
    at: AtOption = None,
    known_at: KnownAtOption = None,
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """May SUBJECT use SERVICE at --at? (deny, allow, priority, discount, deposit_free)"""
    from xinyong import pandas_hold
    from xinyong.access import operations as ops

    at_t, known_t = instant(at, "--at"), _known_at(known_at)
    reg, who = acting(db, as_, key)
    with refused_input(), refusals(), pandas_hold.hold():
        answer = ops.check(reg, who, subject, service, at=at_t, known_at=known_t)
    if json:
        emit_json(answer.public())
        return
    colour = {"deny": "red", "allow": "green"}.get(answer.decision, "cyan")
    console.print(
        f"[bold {colour}]{answer.decision.upper()}[/] {answer.service} for {answer.subject_id} "
        f"at {answer.at}",
        highlight=False,
    )
    for r in answer.reasons:
        basis = f"list {r.list}" if r.list else f"grade {r.grade}"
        until = r.until or "open-ended"
        via = f" via {r.via['relation']} of {r.via['subject_id']}" if r.via else ""
        console.print(f"  {r.system}: {basis}, rule {r.rule}{via}", highlight=False)
        console.print(f"    since {r.since} until {until}", highlight=False)
        console.print(f"    legal basis: {r.legal_basis}", highlight=False)
        if r.remedy:
            console.print(f"    remedy: {r.remedy}", highlight=False)
        if r.disputed:
            review = ", under human review" if r.human_review else ""
            console.print(f"    disputed: objection {r.objection_id}{review}", highlight=False)


@app.command()
def score(
    subject: Annotated[str, typer.Argument(help="Identity number or unified social credit code")],
    system: Annotated[
        str, typer.Option("--system", help="judicial, rongcheng, financial, commercial")
    ],
    at: AtOption = None,
    known_at: KnownAtOption = None,
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
    case: CaseOption = None,
) -> None:
    """SUBJECT's score and grade in one system (null when it computes none)."""
    from xinyong import pandas_hold
    from xinyong.access import operations as ops

    at_t, known_t = instant(at, "--at"), _known_at(known_at)
    reg, who = acting(db, as_, key)
    with refused_input(), refusals(), pandas_hold.hold():
        answer = ops.score(reg, who, subject, system, at=at_t, known_at=known_t, case=case)
    why = ""
    if answer.score is None and not json:
        with refused_input(), reg.store(read_only=True) as store:
            why = _no_scores(store, answer.subject_id, [system], at_t, known_t)[system][0]
    if json:
        emit_json(answer.public())
        return
    if answer.score is None:
        console.print(f"{answer.subject_id}: no {system} score: {why}", highlight=False)
    else:
        console.print(
            f"{answer.subject_id}: {system} score {answer.public()['score']}, grade {answer.grade}"
        )


@app.command()
def explain(
    subject: Annotated[str, typer.Argument(help="Identity number or unified social credit code")],
    system: Annotated[str | None, typer.Option("--system", help="Only this system.")] = None,
    at: AtOption = None,
    known_at: KnownAtOption = None,
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
    case: CaseOption = None,
) -> None:
    """Records, rules, points and legal bases behind SUBJECT's results."""
    from xinyong import pandas_hold
    from xinyong.access import operations as ops

    at_t, known_t = instant(at, "--at"), _known_at(known_at)
    reg, who = acting(db, as_, key)
    with refused_input(), refusals(), pandas_hold.hold():
        explanation = ops.explain(
            reg, who, subject, system=system, at=at_t, known_at=known_t, case=case
        )
    if json:
        emit_json(explanation.model_dump())
        return
    unscored = [s.system for s in explanation.systems if s.score is None]
    with refused_input(), reg.store(read_only=True) as store:
        no_score = _no_scores(store, explanation.subject_id, unscored, at_t, known_t)
    from xinyong.cli.render import print_explanation

    print_explanation(explanation, no_score)


def _no_scores(
    store: Any,
    subject_id: str,
    systems: list[str],
    at: datetime | None,
    known_at: datetime | None,
) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Why each of `systems` gives the subject no score (see render.why_no_score)."""
    from xinyong.catalog.identifiers import parse_subject_id
    from xinyong.cli.render import why_no_score
    from xinyong.packs import installed_packs
    from xinyong.timeutil import age_on

    when = at or now_utc()
    parsed = parse_subject_id(subject_id)
    age = age_on(parsed.birth_date, when)
    packs = {p.system: p for p in installed_packs(store, when)}
    return {
        system: why_no_score(store, packs[system], parsed.value, parsed.kind, age, when, known_at)
        for system in systems
        if system in packs
    }


@packs_app.command("list")
def packs_list(db: DbOption = DEFAULT_DB, json: JsonOption = False) -> None:
    """Installed pack versions."""
    from xinyong.access import operations as ops

    reg, who = acting(db, None, None)
    with refused_input(), refusals():
        rows = ops.list_packs(reg, who)
    if json:
        from xinyong.access import shapes

        emit_json(shapes.pack_rows(rows))
        return
    table = Table("system", "version", "effective from", "sha256")
    for s, v, e, h, _ in rows:
        table.add_row(s, v, str(e), h[:12])
    console.print(table)


@packs_app.command("show")
def packs_show(
    system: Annotated[str, typer.Argument(help="System id, e.g. judicial")],
    version: Annotated[str | None, typer.Option("--version", help="Default: newest")] = None,
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
) -> None:
    """Show an installed pack (its YAML, or JSON with --json)."""
    from xinyong.access import operations as ops
    from xinyong.packs import load_pack

    reg, who = acting(db, None, None)
    with refused_input(), refusals():
        text = ops.pack_text(reg, who, system, version)
        pack = load_pack(f"{system}@{version or 'newest'}", text=text) if json else None
    if pack is not None:
        emit_json(pack.model_dump(mode="json"))
    else:
        console.print(text, highlight=False, markup=False)


@packs_app.command("lint")
def packs_lint(
    file: Annotated[Path, typer.Argument(help="A pack YAML file")],
    json: JsonOption = False,
) -> None:
    """Check a pack against the safeguards; exit 1 on any error (warnings pass)."""
    from xinyong.packs import load_pack
    from xinyong.packs.lint import lint

    with refused_input():
        pack = load_pack(file)
    findings = lint(pack)
    errors = [f for f in findings if f.level == "error"]
    if json:
        from xinyong.access import shapes

        emit_json(shapes.lint_result(str(file), pack, findings))
    else:
        for f in findings:
            colour = "red" if f.level == "error" else "yellow"
            console.print(f"[{colour}]{f.level}[/] {f.rule_id}: {f.message}", highlight=False)
        console.print(f"{file}: {len(errors)} errors, {len(findings) - len(errors)} warnings")
    if errors:
        raise typer.Exit(1)


@packs_app.command("install")
def packs_install(
    file: Annotated[Path, typer.Argument(help="A pack YAML file")],
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Install a new pack version (it must lint without errors)."""
    from xinyong.access import operations as ops

    reg, who = acting(db, as_, key)
    with refused_input(), refusals(), reg.holding():
        with reg.store() as store:
            count = "SELECT count(*) FROM packs"
            before = store.sql.execute(count).fetchone()[0]
        pack = ops.install_pack(reg, who, file)
        with reg.store() as store:
            new = store.sql.execute(count).fetchone()[0] > before
    from xinyong.access import shapes

    payload = shapes.installed_pack(pack, new)
    if json:
        emit_json(payload)
    else:
        state = "installed" if new else "already installed (identical):"
        console.print(
            f"{state} {pack.system} {pack.meta.version} (effective {pack.meta.effective_from})"
        )


@packs_app.command("compile")
def packs_compile(
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Compile and store the replay plans of every installed pack version (a check,
    score or explain that replays then runs stored SQL without building the
    evaluation; engine/compiled.py), and the plans an incremental `evaluate` runs
    (engine/incremental.py; else its first run compiles and stores them)."""
    from xinyong.access import operations as ops

    reg, who = acting(db, as_, key)
    with refused_input(), refusals(), reg.holding():
        compiled = ops.compile_plans(reg, who)
    if json:
        emit_json({"compiled": compiled})
    else:
        console.print(f"compiled {compiled} replay plan(s)")
