"""How the shipped commercial scorecard is made (``xinyong model train-commercial``).

1. Generate a synthetic city (``xinyong.sim.generate_city``; seeded, so the
   same arguments give the same records).
2. Import every year of records up to the cut-off into a fresh registry.
3. Compute the commercial pack's features as of the cut-off (the simulator's
   ``label_at``) with ``xinyong.engine.feature_table``: only the persons the pack
   may score then, i.e. adults who had consented to ``commercial``; a model is
   trained only on data the firm may lawfully process.
4. Join the ground truth ``defaulted_next_12m`` (a 90+ days arrears, a breach or
   a court listing in the following 12 months) and train with the same code as
   ``xinyong model train`` (5-fold CV, seed 7; pdo 50 and 600 points at 20:1
   good:bad odds, then stretched so that the best possible file scores 950 and
   the worst 350: ``commercial_options``).
5. Optionally write the scorecard into ``packs/shipped/commercial.yaml``; only
   the ``scorecard`` block changes, so the features the engine computes are the
   ones the model was trained on.
"""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from xinyong.model.modelfile import build_model, merge_scorecard_text, save_model
from xinyong.model.table import load_training_table
from xinyong.model.train import TrainingOptions, train

TARGET = "defaulted_next_12m"


def commercial_pack_path() -> Path:
    return Path(__file__).resolve().parent.parent / "packs" / "shipped" / "commercial.yaml"


def commercial_options() -> TrainingOptions:
    """The training choices of the shipped scorecard: a fixed seed, 5-fold CV, and
    points stretched over the pack's range 350-950 (issue 7 item 11: with plain
    pdo 50 / 600 at 20:1 no one could score above 904)."""
    from xinyong.packs.loader import load_pack

    score = load_pack(commercial_pack_path()).score
    assert score is not None and score.min_score is not None and score.max_score is not None
    return TrainingOptions(seed=7, span=(score.min_score, score.max_score))


def feature_frame(
    workdir: Path, *, persons: int, seed: int, organizations: int = 200
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The training table (subject_id, one column per feature, the label) and what
    it was built from."""
    from xinyong.engine import feature_table
    from xinyong.ledger.intake import import_file, register_source
    from xinyong.ledger.store import Store
    from xinyong.packs.loader import load_pack
    from xinyong.sim import generate_city, labels

    pack = load_pack(commercial_pack_path())
    city = generate_city(workdir / "city", persons=persons, organizations=organizations, seed=seed)
    cutoff: date = city.label_at
    db = workdir / "registry.duckdb"
    db.unlink(missing_ok=True)
    with Store(db) as store:
        for source_id, kind in city.sources:
            register_source(store, source_id, kind)
        imported = 0
        for year in city.years:
            if year.year > cutoff.year:
                continue  # occurred after the cut-off: the features cannot see it
            result = import_file(store, year.path, recorded_at=year.recorded_at, progress=False)
            imported += result.accepted
        table = feature_table(store, pack, as_of=cutoff.isoformat())
        features = store.ibis.execute(table)
    truth = labels(city).to_pandas()
    frame = features.merge(truth, on="subject_id", how="inner")
    frame[TARGET] = frame[TARGET].astype("int8")
    source = {
        "persons": persons,
        "organizations": organizations,
        "seed": seed,
        "cutoff": cutoff.isoformat(),
        "records_imported": imported,
        "scored_persons": int(len(features)),
        "rows": int(len(frame)),
    }
    return frame, source


def train_commercial(
    *,
    out: Path,
    persons: int = 20000,
    seed: int = 7,
    workdir: Path | None = None,
    merge: bool = False,
    options: TrainingOptions | None = None,
) -> dict[str, Any]:
    """Build the city, train, write ``out`` (and merge into the shipped pack)."""
    options = options or commercial_options()
    with tempfile.TemporaryDirectory(prefix="xinyong-commercial-") as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        frame, source = feature_frame(work, persons=persons, seed=seed)
        path = work / "commercial-features.parquet"
        frame.to_parquet(path, index=False)
        table = load_training_table(path, target=TARGET, bad="1")
        trained_on = (
            f"synthetic city (xinyong.sim seed {seed}, {persons} persons): the"
            f" {source['rows']} consenting adults scored as of {source['cutoff']}, label"
            f" {TARGET} (bad rate {table.target.mean():.2%}); `xinyong model"
            f" train-commercial --persons {persons} --seed {seed}`"
        )
        result = train(table, options, trained_on=trained_on)
        model = build_model(
            result, target=TARGET, bad="1", options=options, features=table.features
        )
        save_model(model, out)
        report: dict[str, Any] = {
            **source,
            "model": str(out),
            "validation": result.validation,
            "cv_auc": round(result.cv_auc, 4),
            "cv_auc_std": round(result.cv_auc_std, 4),
            "pdo": round(result.pdo, 2),
            "bad_rate": round(result.bad_rate, 4),
            "features": [f.feature for f in model.scorecard.features],
            "dropped": result.dropped,
        }
        if merge:
            pack_path = commercial_pack_path()
            text = merge_scorecard_text(pack_path.read_text("utf-8"), model.scorecard)
            from xinyong.packs.loader import load_pack

            load_pack(pack_path, text=text)
            pack_path.write_text(text, "utf-8")
            report["pack"] = str(pack_path)
    return report
