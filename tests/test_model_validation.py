"""`xinyong model report | monitor | disparity`: the validation report on a
labelled table, drift and disparity on a registry, disparity on a table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import xinyong.model
from model_support import mixed_table, run, train_mixed
from xinyong.model import clamp, load_model, raw_scores


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-validation")


@pytest.fixture(scope="module")
def mixed(work: Path) -> tuple[Path, dict]:
    return train_mixed(work)


# -- the validation report ------------------------------------------------------------


def test_report_is_offline_and_states_the_validation_numbers(
    work: Path, mixed: tuple[Path, dict]
) -> None:
    from scipy.stats import ks_2samp

    out, _ = mixed
    holdout = mixed_table(800, seed=11)
    path = work / "holdout-mixed.parquet"
    holdout.to_parquet(path)
    code, output = run(
        "report", str(out), str(path), "--out", str(work / "report"),
        "--group", "nationality", "--json",
    )  # fmt: skip
    assert code == 0, output
    got = json.loads(output)
    html = (work / "report" / "model-report.html").read_text()
    for heading in ("ROC curve", "KS statistic", "Calibration", "Binning tables",
                    "Score distribution", "Points table", "Disparity by nationality"):  # fmt: skip
        assert heading in html, heading
    assert "http://" not in html.replace("http://www.w3.org", "")  # SVG namespaces only
    assert "https://" not in html and "<script" not in html
    model = load_model(out)
    scores = clamp(raw_scores(model.scorecard, holdout))
    bad = (holdout["outcome"] == "bad").to_numpy()
    assert got["auc"] == pytest.approx(roc_auc_score(bad, -scores), abs=1e-6)
    assert got["ks"] == pytest.approx(ks_2samp(scores[bad], scores[~bad]).statistic, abs=1e-6)
    purpose = next(f for f in got["binning"] if f["feature"] == "purpose")
    assert sum(b["count"] for b in purpose["bins"]) == 800
    business = next(b for b in purpose["bins"] if "business" in b["label"])
    n_bad, n_good = bad.sum(), (~bad).sum()
    in_bin = holdout["purpose"].isin([v.strip() for v in business["label"].split(",")])
    woe = np.log(((in_bin & ~bad).sum() / n_good) / ((in_bin & bad).sum() / n_bad))
    assert business["woe"] == pytest.approx(woe, abs=1e-6)
    assert business["woe"] < 0  # the riskiest purpose


# -- drift and disparity on a registry ----------------------------------------------

SHIPPED_MODEL = Path(xinyong.model.__file__).parent / "commercial-model.yaml"


@pytest.fixture(scope="module")
def registry(work: Path) -> Path:
    """Thirty consenting adults with thin, clean files, an account each (and one consenting
    minor), recorded up to 2026-03; one adult falls 95 days behind in 2025-06."""
    from datetime import date, datetime

    from conftest import make_person_id
    from xinyong.ledger.intake import register_source, submit
    from xinyong.ledger.store import Store
    from xinyong.packs import install_pack, shipped_pack_paths

    db = work / "registry.duckdb"
    records = []
    for i in range(30):
        pid = make_person_id(date(1960 + i, 3, 1), seq=100 + i)
        records.append(
            {"record_id": f"c{i}", "subject_id": pid, "type": "subject.consent_granted",
             "occurred_at": "2023-01-10", "source": "city:rongcheng",
             "attributes": {"system": "commercial"}}
        )  # fmt: skip
        # one account open long enough for the pack's minimum history
        records.append(
            {"record_id": f"l{i}", "subject_id": pid, "type": "loan.opened",
             "occurred_at": "2023-01-10", "source": "lender:bank-a",
             "attributes": {"account_id": f"L{i}", "kind": "consumer", "amount": 1000}}
        )  # fmt: skip
    minor = make_person_id(date(2010, 3, 1), seq=999)
    late = make_person_id(date(1960, 3, 1), seq=100)
    records += [
        {"record_id": "m", "subject_id": minor, "type": "subject.consent_granted",
         "occurred_at": "2023-01-10", "source": "city:rongcheng",
         "attributes": {"system": "commercial"}},
        {"record_id": "o", "subject_id": late, "type": "loan.payment_overdue",
         "occurred_at": "2025-06-01", "source": "lender:bank-a",
         "attributes": {"account_id": "A1", "days_past_due": 95, "amount_due": 1000}},
        {"record_id": "z", "subject_id": minor, "type": "subject.consent_withdrawn",
         "occurred_at": "2026-03-01", "source": "city:rongcheng",
         "attributes": {"system": "commercial"}},
    ]  # fmt: skip
    with Store(db) as store:
        install_pack(store, next(p for p in shipped_pack_paths() if p.name == "commercial.yaml"))
        register_source(store, "city:rongcheng", "city")
        register_source(store, "lender:bank-a", "lender")
        result = submit(store, records, recorded_at=datetime(2026, 3, 2))
        assert result.rejected == 0, result.rejects
    return db


def test_monitor_names_the_action_when_the_population_has_moved(registry: Path) -> None:
    from xinyong.model.drift import stability_index

    code, output = run(
        "monitor", str(SHIPPED_MODEL), "--db", str(registry), "--at", "2025-02-01", "--json"
    )
    assert code == 0, output
    got = json.loads(output)
    assert got["system"] == "commercial" and got["subjects"] == 30  # the minor is not scored
    # Thin, clean files only: one band where training had many, so the index is large.
    psi = got["psi"]
    assert psi["index"] > 0.25 and psi["status"] == "act" and "retrain" in psi["action"]
    expected = [b["expected"] for b in psi["bands"]]
    actual = [b["actual"] for b in psi["bands"]]
    assert sum(actual) == pytest.approx(1.0)
    assert psi["index"] == pytest.approx(stability_index(expected, actual), abs=1e-5)
    csi = {c["name"]: c for c in got["csi"]}
    assert set(csi) == {sf.feature for sf in load_model(SHIPPED_MODEL).scorecard.features}
    assert all(c["status"] in ("stable", "watch", "act") for c in csi.values())


def test_stability_thresholds_read_as_the_textbook() -> None:
    from xinyong.model.drift import compare, stability_index

    # (0.25 - 0.5) ln(0.5) + (0.75 - 0.5) ln(1.5)
    assert stability_index([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.274653, abs=1e-6)
    assert compare("x", [0.5, 0.5], [0.25, 0.75]).status == "act"
    assert compare("x", [0.5, 0.5], [0.4, 0.6]).status == "stable"  # 0.0405
    assert compare("x", [0.5, 0.5], [0.3, 0.7]).status == "watch"  # 0.1695


def test_registry_disparity_by_sex_age_band_and_province(registry: Path) -> None:
    code, output = run(
        "disparity", str(SHIPPED_MODEL), "--db", str(registry), "--at", "2025-02-01",
        "--cutoff", "650", "--json",
    )  # fmt: skip
    assert code == 0, output
    got = json.loads(output)
    assert "defaults in the 12 months after 2025-02-01" in got["outcomes"]
    by = {g["group"]: {r["group"]: r for r in g["groups"]} for g in got["groupings"]}
    # 17th digit of the identity number: seq 100..129, odd for men.
    assert by["sex"]["male"]["rows"] == 15 and by["sex"]["female"]["rows"] == 15
    assert set(by["province"]) == {"Shandong"}
    # Born 1960-03-01 .. 1989-03-01, on 2025-02-01: 35 .. 64 years old.
    assert set(by["age_band"]) == {"35-44", "45-54", "55-64"}
    assert by["age_band"]["55-64"]["observed_bad_rate"] > 0  # the one who fell behind
    for grouping in got["groupings"]:
        best = max(r["approval_rate"] for r in grouping["groups"])
        for r in grouping["groups"]:
            assert r["impact_ratio"] == pytest.approx(r["approval_rate"] / best, abs=1e-6)
            assert r["flagged"] == (r["impact_ratio"] < 0.8 and r["rows"] >= 30)
    code, output = run(
        "disparity", str(SHIPPED_MODEL), "--db", str(registry), "--at", "2025-06-01", "--json"
    )
    assert "not yet observable" in json.loads(output)["outcomes"]


def test_disparity_on_a_table_by_identity_number(work: Path, mixed: tuple[Path, dict]) -> None:
    from datetime import date

    from conftest import make_person_id

    out, _ = mixed
    frame = mixed_table(300, seed=21)
    frame["person"] = [make_person_id(date(1950 + i % 50, 6, 1), seq=i) for i in range(300)]
    path = work / "with-ids.csv"
    frame.to_csv(path, index=False)
    code, output = run(
        "disparity", str(out), str(path), "--identity", "person", "--group", "nationality",
        "--on", "2025-01-01", "--json",
    )  # fmt: skip
    assert code == 0, output
    by = {g["group"]: g for g in json.loads(output)["groupings"]}
    assert set(by) == {"nationality", "age_band", "province", "sex"}
    for grouping in by.values():
        assert sum(r["rows"] for r in grouping["groups"]) == 300
    sexes = {r["group"]: r["rows"] for r in by["sex"]["groups"]}
    assert sexes == {"male": 150, "female": 150}  # seq 0..299: the 17th digit alternates
