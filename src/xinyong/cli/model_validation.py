"""`xinyong model report | monitor | disparity`: validating a scorecard on a labelled
table, its drift on a registry, and what it does to groups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from xinyong.cli.common import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    console,
    emit_json,
    fail,
    refused_input,
)
from xinyong.cli.model import labelled_table, model_app

GroupOption = Annotated[
    str | None, typer.Option("--group", help="Columns of FILE to group by (comma-separated).")
]
IdentityOption = Annotated[
    str | None,
    typer.Option(
        "--identity",
        help="Column of FILE with identity numbers: group by age band, province and sex.",
    ),
]
OnOption = Annotated[
    str | None, typer.Option("--on", help="Day the ages are counted on (default today).")
]
CutoffOption = Annotated[
    float, typer.Option("--cutoff", help="Approval cut-off: a score at or above it.")
]


@model_app.command("report")
def report_cmd(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="Model file (YAML).")],
    file: Annotated[Path, typer.Argument(help="Labelled table to validate on.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the HTML report.")],
    group: GroupOption = None,
    identity: IdentityOption = None,
    on: OnOption = None,
    cutoff: CutoffOption = 600.0,
    title: Annotated[str | None, typer.Option("--title", help="Report title.")] = None,
    json: JsonOption = False,
) -> None:
    """Write an offline HTML validation report (ROC, KS, Gini, calibration, binning
    tables with WoE and IV, score distributions, points table, stability and, with
    --group or --identity, disparity) of MODEL on FILE."""
    from xinyong.model import ModelInputError, load_model
    from xinyong.model.registry import population_stability
    from xinyong.model.report import render_model_report, write_model_report
    from xinyong.model.validation import validate

    try:
        model = load_model(model_path)
        columns = _columns(group, identity)
        table = labelled_table(model, file, columns)
        result = validate(model, table.features, table.target)
        gaps = _file_disparities(model, table, group, identity, on, cutoff)
        stable = population_stability(model, table.features) if model.reference else None
        html = render_model_report(
            model,
            result,
            title=title or f"Scorecard validation: {model_path.name}",
            source=f"{file.name} ({table.target_column} = {table.bad_value!r} is bad)",
            disparities=gaps,
            stability=stable,
        )
        path = write_model_report(html, out)
    except OSError as exc:
        fail(f"{out}: cannot write: {exc.strerror or exc}")
    except (ModelInputError, ValueError) as exc:
        fail(str(exc))
    payload = {"report": str(path), **result.as_dict(), "stability": stable, "disparity": gaps}
    if json:
        emit_json(payload)
        return
    console.print(
        f"AUC [bold]{result.auc:.4f}[/], Gini {result.gini:.4f}, KS {result.ks:.4f} on"
        f" {result.rows} rows; wrote [bold]{path}[/]",
        highlight=False,
    )


def _columns(group: str | None, identity: str | None) -> list[str]:
    names = [n.strip() for n in (group or "").split(",") if n.strip()]
    return names + ([identity] if identity else [])


def _file_disparities(
    model: Any,
    table: Any,
    group: str | None,
    identity: str | None,
    on: str | None,
    cutoff: float,
) -> list[dict[str, Any]]:
    from datetime import date

    from xinyong.model import clamp, raw_scores
    from xinyong.model.disparity import disparity, identity_groups
    from xinyong.model.validation import predicted_bad_rate

    scores = clamp(
        raw_scores(model.scorecard, table.features), model.score_range.min, model.score_range.max
    )
    frame = table.frame.reset_index(drop=True)
    groups = {name: frame[name] for name in _columns(group, None)}
    if identity:
        try:
            day = date.fromisoformat(on) if on else date.today()
        except ValueError:
            fail(f"--on {on!r}: give a day as YYYY-MM-DD", 2)
        groups.update(identity_groups([str(i) for i in frame[identity]], day))
    predicted = predicted_bad_rate(model, scores)
    return [
        disparity(scores, g, cutoff=cutoff, predicted=predicted, bad=table.target, name=name)
        for name, g in groups.items()
    ]


@model_app.command("disparity")
def disparity_cmd(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="Model file (YAML).")],
    file: Annotated[
        Path | None, typer.Argument(help="Labelled table; leave out to use the registry (--db).")
    ] = None,
    group: GroupOption = None,
    identity: IdentityOption = None,
    on: OnOption = None,
    cutoff: CutoffOption = 600.0,
    db: Annotated[
        Path | None, typer.Option("--db", help="Registry: group by age band, province, sex.")
    ] = None,
    at: Annotated[str | None, typer.Option("--at", help="Registry: score as of.")] = None,
    system: Annotated[
        str | None, typer.Option("--system", help="Registry: pack that computes the features.")
    ] = None,
    months: Annotated[
        int, typer.Option("--outcome-months", min=1, help="Registry: months of outcomes.")
    ] = 12,
    json: JsonOption = False,
) -> None:
    """Approval and bad rates at the cut-off, adverse impact ratios (flagged below 0.8),
    AUC and calibration per group: by columns of FILE (--group, or --identity for age
    band, province and sex), or on the registry (--db) by age band, province and sex
    read from the identity number. Groups are measured, never features."""
    from xinyong.model import ModelInputError, load_model

    if (file is None) == (db is None):
        fail("give a labelled FILE with --group COL or --identity COL, or --db for the registry", 2)
    if file is not None and not (group or identity):
        fail("--group COL or --identity COL is needed with FILE", 2)
    try:
        model = load_model(model_path)
        if file is not None:
            table = labelled_table(model, file, _columns(group, identity))
            payload: dict[str, Any] = {
                "groupings": _file_disparities(model, table, group, identity, on, cutoff)
            }
        else:
            assert db is not None
            payload = _registry(db, at, lambda store, when: _registry_disparity(
                store, model, when, system, cutoff, months))  # fmt: skip
    except ModelInputError as exc:
        fail(str(exc))
    if json:
        emit_json(payload)
        return
    for grouping in payload["groupings"]:
        grid = Table(
            f"{grouping['group']}", "rows", "approved", "impact ratio", "bad rate approved",
            "AUC", "observed", "predicted", title=f"cut-off {grouping['cutoff']:g}",
        )  # fmt: skip
        for g in grouping["groups"]:
            grid.add_row(
                g["group"],
                f"{g['rows']:,}",
                f"{g['approval_rate']:.1%}",
                f"{g['impact_ratio']:.2f}" + (" FLAG" if g["flagged"] else ""),
                _pct(g.get("bad_rate_approved")),
                "" if g.get("auc") is None else f"{g['auc']:.3f}",
                _pct(g.get("observed_bad_rate")),
                _pct(g.get("predicted_bad_rate")),
            )
        console.print(grid)
    if "outcomes" in payload:
        console.print(f"outcomes: {payload['outcomes']}", highlight=False)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.2%}"


def _registry(db: Path, at: str | None, work: Any) -> dict[str, Any]:
    from xinyong.cli.common import instant, open_store
    from xinyong.timeutil import now_utc

    when = instant(at, "--at") or now_utc()
    with refused_input(), open_store(db) as store:
        result: dict[str, Any] = work(store, when)
    return result


def _registry_disparity(
    store: Any, model: Any, at: Any, system: str | None, cutoff: float, months: int
) -> dict[str, Any]:
    from xinyong.model.registry import registry_disparity

    return registry_disparity(store, model, at, system, cutoff=cutoff, outcome_months=months)


@model_app.command("monitor")
def monitor_cmd(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="Model file (YAML).")],
    db: DbOption = DEFAULT_DB,
    at: Annotated[str | None, typer.Option("--at", help="Compare as of (default now).")] = None,
    system: Annotated[
        str | None, typer.Option("--system", help="Pack that computes the features.")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Drift of the registry from the training population: PSI over score bands and
    CSI per feature (< 0.1 stable, 0.1-0.25 watch, > 0.25 act), with the action."""
    from xinyong.model import ModelInputError, load_model
    from xinyong.model.registry import monitor

    try:
        model = load_model(model_path)
        payload = _registry(db, at, lambda store, when: monitor(store, model, when, system))
    except ModelInputError as exc:
        fail(str(exc))
    if json:
        emit_json(payload)
        return
    psi = payload["psi"]
    console.print(
        f"{payload['system']} as of {payload['at']}: {payload['subjects']:,} subjects scored;"
        f" PSI [bold]{psi['index']:.4f}[/] {psi['status']}: {psi['action']}",
        highlight=False,
    )
    grid = Table("feature", "CSI", "status", "action")
    for c in payload["csi"]:
        grid.add_row(c["name"], f"{c['index']:.4f}", c["status"], c["action"])
    console.print(grid)
