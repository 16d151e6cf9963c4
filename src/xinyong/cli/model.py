"""`xinyong model`: train a points scorecard on a table, evaluate it, merge it into a pack.
The validation commands (report, monitor, disparity) are in ``model_validation``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from xinyong.cli import app
from xinyong.cli.common import JsonOption, console, emit_json, fail

model_app = typer.Typer(
    help="Points scorecards: train on a CSV/Parquet table, evaluate, validate, monitor,"
    " measure disparity, merge into a pack.",
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
        table = labelled_table(model, file)
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


def labelled_table(model: Any, file: Path, groups: list[str] | None = None) -> Any:
    """FILE read with MODEL's features (categorical ones as categories) and target;
    ``groups`` are columns measured apart (never features)."""
    from xinyong.model import load_training_table
    from xinyong.model.scoring import is_categorical

    features = [f.feature for f in model.scorecard.features]
    for group in groups or []:
        if group in features:
            fail(f"--group {group!r} is one of the model's features; group by another column", 2)
    return load_training_table(
        file,
        target=model.target.column,
        bad=model.target.bad,
        features=features,
        categorical=[f.feature for f in model.scorecard.features if is_categorical(f)],
        protected=groups or None,
    )


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


# The validation commands (report, monitor, disparity) live in their own module.
from xinyong.cli import model_validation as _validation  # noqa: E402,F401
