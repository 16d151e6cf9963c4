"""The synthetic city: deterministic, valid identifiers, catalog-conformant, plausible rates."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pytest
from stdnum.cn import ric
from stdnum.cn import uscc as stdnum_uscc

from xinyong.catalog import load_catalog
from xinyong.sim import CityFiles, generate_city, labels
from xinyong.sim.identifiers import BIRTHPLACES, address_codes, org_code_check
from xinyong.sim.rates import GROUNDS


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> CityFiles:
    out = tmp_path_factory.mktemp("city")
    return generate_city(out, persons=4_000, organizations=300, seed=11, chunk_subjects=1_500)


def _records(city: CityFiles) -> duckdb.DuckDBPyRelation:
    con = duckdb.connect()
    paths = [str(p) for p in city.record_paths]
    return con.read_parquet(paths)


def _digest(paths: list[Path]) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def test_same_seed_same_bytes(city: CityFiles, tmp_path: Path) -> None:
    again = generate_city(tmp_path, persons=4_000, organizations=300, seed=11, chunk_subjects=1_500)
    assert _digest(again.record_paths) == _digest(city.record_paths)
    assert _digest([again.labels_path]) == _digest([city.labels_path])
    other = generate_city(tmp_path / "b", persons=500, organizations=20, seed=12)
    first = other.record_paths[0].read_bytes()
    assert (
        first
        != generate_city(tmp_path / "c", persons=500, organizations=20, seed=13)
        .record_paths[0]
        .read_bytes()
    )


def test_every_identifier_is_valid(city: CityFiles) -> None:
    rel = _records(city)
    ids = [r[0] for r in rel.query("r", "select distinct subject_id from r").fetchall()]
    persons = [i for i in ids if i[:2] != "91" and i[:2] != "92" and i[:2] != "93"]
    orgs = [i for i in ids if i not in set(persons)]
    assert all(ric.is_valid(i) for i in persons)
    assert orgs and all(stdnum_uscc.is_valid(i) for i in orgs)
    # GB 11714: the embedded organization code carries its own check character.
    assert all(org_code_check(i[8:16]) == i[16] for i in orgs)
    reps = rel.query(
        "r",
        "select distinct json_extract_string(attributes, '$.person_id') from r "
        "where type = 'registry.legal_representative'",
    ).fetchall()
    assert reps and all(ric.is_valid(r[0]) for r in reps)
    assert len(set(ids)) == len(ids)


def test_address_lineages_cover_every_birth_year() -> None:
    years = np.arange(1925, 2027)
    for i in range(len(BIRTHPLACES)):
        codes = address_codes(np.full(len(years), i), years)
        assert (codes > 0).all()


def test_records_conform_to_the_catalog(city: CityFiles) -> None:
    catalog = load_catalog()
    kinds = dict(city.sources)
    rows = (
        _records(city)
        .query("r", "select type, source, attributes, subject_id, record_id from r")
        .fetchall()
    )
    assert len({r[4] for r in rows}) == len(rows)
    for type_, source, attributes, subject_id, _ in rows:
        spec = catalog.types[type_]
        assert kinds[source] in spec.sources, (type_, source)
        attrs = json.loads(attributes)
        required = {k for k, a in spec.attributes.items() if a.required}
        assert required <= set(attrs) <= set(spec.attributes), (type_, attrs)
        for name, value in attrs.items():
            a = spec.attributes[name]
            if a.values is not None:
                assert value in a.values
            if a.min is not None:
                assert value >= a.min
            if a.max is not None:
                assert value <= a.max
        if "organization" not in spec.subject_kinds:
            assert subject_id[:1] != "9"


def test_minors_are_present_and_have_records(city: CityFiles) -> None:
    con = duckdb.connect()
    minors = con.execute(
        "select count(*) from read_parquet(?) where kind = 'person' and birth_date > ?",
        [str(city.subjects_path), date(city.end.year - 18, city.end.month, city.end.day)],
    ).fetchone()
    assert minors is not None and 0.1 < minors[0] / city.persons < 0.3
    young = (
        _records(city)
        .query(
            "r",
            "select count(*) from r where type like 'traffic.jaywalking' "
            "and substr(subject_id, 7, 4)::int > 2008",
        )
        .fetchone()
    )
    assert young is not None and young[0] > 0


def test_rates_are_roughly_as_documented(city: CityFiles) -> None:
    rel = _records(city)
    counts = dict(rel.query("r", "select type, count(*) from r group by 1").fetchall())
    adult_years = city.persons * 0.8 * 11.8
    assert 0.04 < counts["traffic.red_light"] / adult_years < 0.08
    assert 0.12 < counts["loan.opened"] / adult_years < 0.35
    judgments = counts["court.debt_liability"] + counts["court.breach_liability"]
    assert 0.15 < counts["court.listing_decision"] / judgments < 0.5
    grounds = dict(
        rel.query(
            "r",
            "select json_extract_string(attributes, '$.ground'), count(*) from r "
            "where type = 'court.listing_decision' group by 1",
        ).fetchall()
    )
    share = grounds["able_but_refuses"] / sum(grounds.values())
    assert abs(share - GROUNDS["able_but_refuses"]) < 0.1
    label = labels(city).column("defaulted_next_12m").to_numpy(zero_copy_only=False)
    assert 0.002 < label.mean() < 0.08


# Intake acceptance of every generated record is asserted end to end in test_demo
# (rejected == 0), where the registry is built anyway.
