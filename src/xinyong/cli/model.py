"""`xinyong model`: train a points scorecard on a table, evaluate it, merge it into a pack."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from xinyong.cli import app
from xinyong.cli.common import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    console,
    emit_json,
    fail,
    refused_input,
)

model_app = typer.Typer(
    help="Points scorecards: train on a CSV/Parquet table, evaluate, merge into a pack.",
    no_args_is_help=True,
)
app.add_typer(model_app, name="model")


def _names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise typer.BadParameter("give one or more column names separated by commas")
    return names


def _trends(values: list[str]) -> dict[str, str]:
    trends: dict[str, str] = {}
    for item in values:
        column, sep, trend = item.partition("=")
        if not sep or not column.strip() or not trend.strip():
            raise typer.BadParameter(f"{item!r}: write COLUMN=TREND, e.g. income=descending")
        trends[column.strip()] = trend.strip()
    return trends


def _span(value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        low, high = (float(v) for v in value.split(","))
    except ValueError:
        raise typer.BadParameter(f"{value!r}: write LOW,HIGH, e.g. 350,950") from None
    return low, high


@model_app.command("train")
def train_cmd(
    file: Annotated[Path, typer.Argument(help="Training table: .csv or .parquet.")],
    target: Annotated[str, typer.Option("--target", help="Column holding the outcome.")],
    bad: Annotated[str, typer.Option("--bad", help="Value of the target that means bad.")],
    out: Annotated[Path, typer.Option("--out", help="Model file to write (YAML).")],
    features: Annotated[
        str | None,
        typer.Option("--features", help="Comma-separated feature columns (default: all)."),
    ] = None,
    exclude: Annotated[
        str | None, typer.Option("--exclude", help="Comma-separated columns that are not features.")
    ] = None,
    categorical: Annotated[
        str | None,
        typer.Option(
            "--categorical", help="Comma-separated numeric columns to bin as categories (codes)."
        ),
    ] = None,
    protected: Annotated[
        str | None,
        typer.Option("--protected", help="Comma-separated protected attributes: never features."),
    ] = None,
    pdo: Annotated[float, typer.Option("--pdo", help="Points to double the odds.")] = 50.0,
    base_score: Annotated[
        float, typer.Option("--base-score", help="Score at the base odds.")
    ] = 600.0,
    base_odds: Annotated[
        float, typer.Option("--base-odds", help="Good:bad odds at the base score.")
    ] = 20.0,
    span: Annotated[
        str | None,
        typer.Option(
            "--span",
            help="LOW,HIGH: stretch the points so the worst possible file scores LOW and"
            " the best HIGH (overrides --pdo and --base-score).",
        ),
    ] = None,
    folds: Annotated[int, typer.Option("--folds", help="Stratified CV folds.")] = 5,
    holdout: Annotated[
        float | None,
        typer.Option("--holdout", help="Hold out this share of rows instead of k-fold CV."),
    ] = None,
    min_iv: Annotated[
        float, typer.Option("--min-iv", help="Drop features with less information value.")
    ] = 0.02,
    max_bins: Annotated[int, typer.Option("--max-bins", help="Most bins per feature.")] = 6,
    min_bin_size: Annotated[
        float, typer.Option("--min-bin-size", help="Least share of rows in a bin.")
    ] = 0.01,
    rare_share: Annotated[
        float,
        typer.Option("--rare-share", help="Pool categories rarer than this share of rows."),
    ] = 0.02,
    monotonic: Annotated[
        list[str] | None,
        typer.Option(
            "--monotonic",
            help="COLUMN=TREND (ascending, descending, peak, valley, auto, none): the"
            " bad rate's trend over the column's bins; repeatable.",
        ),
    ] = None,
    any_trend: Annotated[
        bool,
        typer.Option(
            "--any-trend", help="Numeric bins need not be monotonic unless --monotonic says so."
        ),
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fold or held-out split.")] = 0,
    json: JsonOption = False,
) -> None:
    """Train a scorecard (optimal binning of numeric and categorical columns, logistic
    regression, pdo/odds scaling) and print its validated AUC and the IV table."""
    from xinyong.model import (
        ModelInputError,
        TrainingOptions,
        build_model,
        load_training_table,
        save_model,
        train,
    )

    options = TrainingOptions(
        pdo=pdo,
        base_score=base_score,
        base_odds=base_odds,
        folds=folds,
        holdout=holdout,
        min_iv=min_iv,
        max_bins=max_bins,
        min_bin_size=min_bin_size,
        rare_share=rare_share,
        monotonic=not any_trend,
        trends=_trends(monotonic or []),
        span=_span(span),
        seed=seed,
    )
    try:
        options.check()
    except ValueError as exc:
        fail(str(exc), 2)
    feature_names, excluded = _names(features), _names(exclude)
    try:
        table = load_training_table(
            file,
            target=target,
            bad=bad,
            features=feature_names,
            exclude=excluded,
            categorical=_names(categorical),
            protected=_names(protected),
        )
        unknown = sorted(set(options.trends) - set(table.features.columns))
        if unknown:
            raise ModelInputError(
                f"{file}: --monotonic names {', '.join(map(repr, unknown))}, which is not a"
                " candidate feature"
            )
        result = train(table, options)
    except ModelInputError as exc:
        fail(str(exc))
    model = build_model(result, target=target, bad=bad, options=options, features=table.features)
    try:
        save_model(model, out)
    except OSError as exc:
        fail(f"{out}: cannot write: {exc.strerror or exc}")
    selected = {f.feature for f in model.scorecard.features}
    iv_table: list[dict[str, Any]] = [
        {
            "feature": name,
            "kind": "categorical" if name in result.categorical else "numeric",
            "iv": round(result.information_value.get(name, 0.0), 6),
            "selected": name in selected,
            "why_not": result.dropped.get(name, ""),
        }
        for name in sorted(result.candidates, key=lambda n: -result.information_value.get(n, 0.0))
    ]
    payload: dict[str, Any] = {
        "model": str(out),
        "validation": result.validation,
        "auc": round(result.auc, 6),
        "cv_auc": round(result.cv_auc, 6) if result.folds else None,
        "cv_auc_std": round(result.cv_auc_std, 6) if result.folds else None,
        "holdout_auc": None if result.folds else round(result.auc, 6),
        "folds": result.folds,
        "rows": result.rows,
        "bad_rate": round(result.bad_rate, 6),
        "offset": model.scorecard.offset,
        "pdo": round(result.pdo, 4),
        "base_score": round(result.base_score, 4),
        "features": [f.feature for f in model.scorecard.features],
        "categorical": result.categorical,
        "information_value": iv_table,
        "dropped": result.dropped,
    }
    if json:
        emit_json(payload)
        return
    grid = Table("feature", "kind", "IV", "selected", "bins", "points (best bin = 0)")
    cards = {sf.feature: sf for sf in model.scorecard.features}
    for row in iv_table:
        sf = cards.get(row["feature"])
        grid.add_row(
            row["feature"],
            row["kind"],
            f"{row['iv']:.3f}",
            "yes" if row["selected"] else "no",
            str(len(sf.bins)) if sf else "",
            " ".join(f"{b.points:+g}" for b in sf.bins) if sf else row["why_not"],
        )
    console.print(grid)
    for name, why in result.dropped.items():
        if name not in result.candidates:
            console.print(f"not a candidate {name}: {why}", highlight=False)
    console.print(
        f"AUC [bold]{result.auc:.4f}[/]"
        + (f" ± {result.auc_std:.4f}" if result.folds else "")
        + f" ({result.validation}; {result.rows} rows, bad rate {result.bad_rate:.2%});"
        f" offset {model.scorecard.offset:g}, pdo {result.pdo:.1f}; wrote [bold]{out}[/]",
        highlight=False,
    )


@model_app.command("evaluate")
def evaluate_cmd(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="Model file (YAML).")],
    file: Annotated[Path, typer.Argument(help="Table with the features and the target.")],
    json: JsonOption = False,
) -> None:
    """Score FILE with MODEL and print AUC and Gini (needs the model's target column)."""
    from xinyong.model import (
        ModelInputError,
        clamp,
        discrimination,
        grade_of,
        load_model,
        raw_scores,
    )

    try:
        model = load_model(model_path)
        table = _labelled(model, file)
        scores = clamp(
            raw_scores(model.scorecard, table.features),
            model.score_range.min,
            model.score_range.max,
        )
        result = discrimination(table.target, scores)
    except (ModelInputError, ValueError) as exc:
        fail(str(exc))
    grades: dict[str, int] = {band.grade: 0 for band in model.grades}
    for s in scores:
        g = grade_of(float(s), model.grades)
        if g is not None:
            grades[g] += 1
    payload: dict[str, Any] = {
        **result.as_dict(),
        "mean_score": round(float(scores.mean()), 3),
        "grades": grades,
    }
    if json:
        emit_json(payload)
        return
    console.print(
        f"AUC [bold]{result.auc:.4f}[/], Gini [bold]{result.gini:.4f}[/] on {result.rows} rows"
        f" (bad rate {result.bad_rate:.2%}); mean score {scores.mean():.1f}",
        highlight=False,
    )
    console.print("grades: " + ", ".join(f"{g} {n}" for g, n in grades.items()), highlight=False)


def _labelled(model: Any, file: Path, group: str | None = None) -> Any:
    """FILE read with MODEL's features (categorical ones as categories) and target."""
    from xinyong.model import load_training_table
    from xinyong.model.scoring import is_categorical

    features = [f.feature for f in model.scorecard.features]
    if group is not None and group in features:
        fail(f"--group {group!r} is one of the model's features; group by another column", 2)
    return load_training_table(
        file,
        target=model.target.column,
        bad=model.target.bad,
        features=features,
        categorical=[f.feature for f in model.scorecard.features if is_categorical(f)],
        protected=[group] if group is not None else None,
    )


@model_app.command("report")
def report_cmd(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="Model file (YAML).")],
    file: Annotated[Path, typer.Argument(help="Labelled table to validate on.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the HTML report.")],
    group: Annotated[
        str | None, typer.Option("--group", help="Add a disparity table by this column.")
    ] = None,
    cutoff: Annotated[
        float, typer.Option("--cutoff", help="Approval cut-off score for the disparity table.")
    ] = 600.0,
    title: Annotated[str | None, typer.Option("--title", help="Report title.")] = None,
    json: JsonOption = False,
) -> None:
    """Write an offline HTML validation report (ROC, KS, Gini, calibration, binning
    tables with WoE and IV, score distributions, points table) of MODEL on FILE."""
    from xinyong.model import ModelInputError, load_model
    from xinyong.model.registry import population_stability
    from xinyong.model.report import render_model_report, write_model_report
    from xinyong.model.validation import validate

    try:
        model = load_model(model_path)
        table = _labelled(model, file, group)
        result = validate(model, table.features, table.target)
        gap = _file_disparity(model, table, group, cutoff) if group else None
        stable = population_stability(model, table.features) if model.reference else None
        html = render_model_report(
            model,
            result,
            title=title or f"Scorecard validation: {model_path.name}",
            source=f"{file.name} ({table.target_column} = {table.bad_value!r} is bad)",
            disparity=gap,
            stability=stable,
        )
        path = write_model_report(html, out)
    except OSError as exc:
        fail(f"{out}: cannot write: {exc.strerror or exc}")
    except (ModelInputError, ValueError) as exc:
        fail(str(exc))
    payload = {"report": str(path), **result.as_dict(), "stability": stable}
    if json:
        emit_json(payload)
        return
    console.print(
        f"AUC [bold]{result.auc:.4f}[/], Gini {result.gini:.4f}, KS {result.ks:.4f} on"
        f" {result.rows} rows; wrote [bold]{path}[/]",
        highlight=False,
    )


def _file_disparity(model: Any, table: Any, group: str, cutoff: float) -> dict[str, Any]:
    from xinyong.model import clamp, raw_scores
    from xinyong.model.disparity import disparity
    from xinyong.model.validation import predicted_bad_rate

    scores = clamp(
        raw_scores(model.scorecard, table.features), model.score_range.min, model.score_range.max
    )
    return disparity(
        scores,
        table.frame[group].reset_index(drop=True),
        cutoff=cutoff,
        predicted=predicted_bad_rate(model, scores),
        bad=table.target,
        name=group,
    )


@model_app.command("disparity")
def disparity_cmd(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="Model file (YAML).")],
    file: Annotated[
        Path | None, typer.Argument(help="Labelled table; leave out to use the registry (--db).")
    ] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="Column of FILE to group by.")
    ] = None,
    cutoff: Annotated[
        float, typer.Option("--cutoff", help="Approval cut-off: a score at or above it.")
    ] = 600.0,
    db: Annotated[
        Path | None, typer.Option("--db", help="Registry: group by age band, province, sex.")
    ] = None,
    at: Annotated[str | None, typer.Option("--at", help="Score as of (default now).")] = None,
    system: Annotated[
        str | None, typer.Option("--system", help="Pack that computes the features.")
    ] = None,
    months: Annotated[
        int, typer.Option("--outcome-months", min=1, help="Registry: months of outcomes.")
    ] = 12,
    json: JsonOption = False,
) -> None:
    """Approval and bad rates at the cut-off, adverse impact ratios (flagged below 0.8),
    AUC and calibration per group: by a column of FILE, or on the registry by age
    band, province and sex read from the identity number (measured, never features)."""
    from xinyong.model import ModelInputError, load_model

    if (file is None) == (db is None):
        fail("give a labelled FILE with --group COL, or --db for the registry", 2)
    if file is not None and group is None:
        fail("--group COL is needed with FILE", 2)
    try:
        model = load_model(model_path)
        if file is not None and group is not None:
            table = _labelled(model, file, group)
            payload: dict[str, Any] = {"groupings": [_file_disparity(model, table, group, cutoff)]}
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


@model_app.command("merge")
def merge_cmd(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="Model file (YAML).")],
    pack_path: Annotated[Path, typer.Argument(metavar="PACK", help="Pack YAML to update.")],
    json: JsonOption = False,
) -> None:
    """Put MODEL's scorecard in PACK's score.scorecard section (other lines unchanged)."""
    from xinyong.model import ModelInputError, load_model, merge_scorecard_text
    from xinyong.packs.loader import PackError, load_pack

    try:
        model = load_model(model_path)
        text = pack_path.read_text("utf-8")
        merged = merge_scorecard_text(text, model.scorecard)
        load_pack(pack_path, text=merged)  # refuse to write a pack that no longer validates
        pack_path.write_text(merged, "utf-8")
    except OSError as exc:
        fail(f"{pack_path}: {exc.strerror or exc}")
    except (ModelInputError, PackError) as exc:
        fail(f"{pack_path}: {exc}")
    if json:
        emit_json({"pack": str(pack_path), "features": len(model.scorecard.features)})
    else:
        console.print(f"scorecard of {model_path} merged into [bold]{pack_path}[/]")


@model_app.command("train-commercial")
def train_commercial_cmd(
    out: Annotated[Path, typer.Option("--out", help="Model file to write.")] = Path(
        "commercial-model.yaml"
    ),
    persons: Annotated[int, typer.Option("--persons", help="Persons in the city.")] = 20000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic city.")] = 7,
    workdir: Annotated[
        Path | None, typer.Option("--workdir", help="Keep the registry and tables here.")
    ] = None,
    merge: Annotated[
        bool, typer.Option("--merge/--no-merge", help="Write the scorecard into the pack.")
    ] = False,
    json: JsonOption = False,
) -> None:
    """Reproduce the shipped commercial scorecard: build a synthetic city, compute the
    commercial features as of a cut-off, join the default labels, train."""
    from xinyong.model.commercial import train_commercial

    try:
        report = train_commercial(out=out, persons=persons, seed=seed, workdir=workdir, merge=merge)
    except ValueError as exc:
        fail(str(exc))
    if json:
        emit_json(report)
    else:
        console.print(
            f"commercial scorecard: CV AUC [bold]{report['cv_auc']:.4f}[/] on"
            f" {report['rows']} persons (bad rate {report['bad_rate']:.2%}); wrote {out}"
            + (f"; merged into {report['pack']}" if merge else ""),
            highlight=False,
        )
