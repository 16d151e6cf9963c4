"""`xinyong model`: train a points scorecard on a table, evaluate it, merge it into a pack."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from xinyong.cli import app
from xinyong.cli.common import JsonOption, console, emit_json, fail

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


@model_app.command("train")
def train_cmd(
    file: Annotated[Path, typer.Argument(help="Training table: .csv or .parquet.")],
    target: Annotated[str, typer.Option("--target", help="Column holding the outcome.")],
    bad: Annotated[str, typer.Option("--bad", help="Value of the target that means bad.")],
    out: Annotated[Path, typer.Option("--out", help="Model file to write (YAML).")],
    features: Annotated[
        str | None,
        typer.Option("--features", help="Comma-separated feature columns (default: all numeric)."),
    ] = None,
    exclude: Annotated[
        str | None, typer.Option("--exclude", help="Comma-separated columns that are not features.")
    ] = None,
    pdo: Annotated[float, typer.Option("--pdo", help="Points to double the odds.")] = 50.0,
    base_score: Annotated[
        float, typer.Option("--base-score", help="Score at the base odds.")
    ] = 600.0,
    base_odds: Annotated[
        float, typer.Option("--base-odds", help="Good:bad odds at the base score.")
    ] = 20.0,
    folds: Annotated[int, typer.Option("--folds", help="Stratified CV folds.")] = 5,
    min_iv: Annotated[
        float, typer.Option("--min-iv", help="Drop features with less information value.")
    ] = 0.02,
    max_bins: Annotated[int, typer.Option("--max-bins", help="Most bins per feature.")] = 6,
    min_bin_size: Annotated[
        float, typer.Option("--min-bin-size", help="Least share of rows in a bin.")
    ] = 0.01,
    monotonic: Annotated[
        bool,
        typer.Option("--monotonic/--any-trend", help="Points rise or fall steadily per feature."),
    ] = True,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fold split.")] = 0,
    json: JsonOption = False,
) -> None:
    """Train a scorecard (optimal binning + logistic regression, pdo/odds scaling) and
    print its cross-validated AUC."""
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
        min_iv=min_iv,
        max_bins=max_bins,
        min_bin_size=min_bin_size,
        monotonic=monotonic,
        seed=seed,
    )
    try:
        options.check()
    except ValueError as exc:
        fail(str(exc), 2)
    feature_names, excluded = _names(features), _names(exclude)
    try:
        table = load_training_table(
            file, target=target, bad=bad, features=feature_names, exclude=excluded
        )
        result = train(table, options)
    except ModelInputError as exc:
        fail(str(exc))
    model = build_model(result, target=target, bad=bad, options=options)
    try:
        save_model(model, out)
    except OSError as exc:
        fail(f"{out}: cannot write: {exc.strerror or exc}")
    payload: dict[str, Any] = {
        "model": str(out),
        "cv_auc": round(result.cv_auc, 6),
        "cv_auc_std": round(result.cv_auc_std, 6),
        "folds": result.folds,
        "rows": result.rows,
        "bad_rate": round(result.bad_rate, 6),
        "offset": model.scorecard.offset,
        "features": [f.feature for f in model.scorecard.features],
        "dropped": result.dropped,
    }
    if json:
        emit_json(payload)
        return
    grid = Table("feature", "bins", "points (best bin = 0)", "IV")
    for sf in model.scorecard.features:
        grid.add_row(
            sf.feature,
            str(len(sf.bins)),
            " ".join(f"{b.points:+g}" for b in sf.bins),
            f"{result.information_value.get(sf.feature, 0):.3f}",
        )
    console.print(grid)
    for name, why in result.dropped.items():
        console.print(f"dropped {name}: {why}", highlight=False)
    console.print(
        f"CV AUC [bold]{result.cv_auc:.4f}[/] ± {result.cv_auc_std:.4f}"
        f" ({result.folds}-fold stratified, {result.rows} rows, bad rate"
        f" {result.bad_rate:.2%}); offset {model.scorecard.offset:g}; wrote [bold]{out}[/]",
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
        load_training_table,
        raw_scores,
    )

    try:
        model = load_model(model_path)
        table = load_training_table(
            file,
            target=model.target.column,
            bad=model.target.bad,
            features=[f.feature for f in model.scorecard.features],
        )
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
        # the message names its file already (the pack's or the model's)
        message = str(exc)
        named = message.startswith((str(pack_path), str(model_path)))
        fail(message if named else f"{pack_path}: {message}")
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
