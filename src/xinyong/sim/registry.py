"""Registry facts and consents: names, legal representatives, consent grants and
withdrawals, self-inquiries."""

from __future__ import annotations

import numpy as np

from xinyong.sim.behaviour import (
    COMMERCIAL_PORTAL,
    CREDIT_REFERENCE,
    MARKET_REGULATOR,
    Subjects,
    _keep,
)
from xinyong.sim.events import YEAR, Chunk, json_attrs, office_hours, poisson_times
from xinyong.sim.population import Organizations, Persons, person_names, pick_adults
from xinyong.sim.rates import CONSENT, day_of


def person_registry(rng: np.random.Generator, chunk: Chunk, s: Subjects) -> None:
    """Each person's registered name (dated at birth), consents and self-inquiries."""
    n = len(s.born)
    rows = np.arange(n)
    chunk.add(
        "registry.name",
        rows,
        s.born.astype(np.float64),
        MARKET_REGULATOR,
        json_attrs(n, name=(person_names(rng, n), True)),
        date_only=True,
    )

    # Rongcheng's 2021 rules score only those who consent (Rong Zheng Fa [2021] No. 3).
    adult_from = np.maximum(s.born + 18 * YEAR, day_of("2021-03-01"))
    m = (s.residence == 0) & (rng.random(n) < CONSENT["rongcheng_share"])
    when = office_hours(rng, adult_from + rng.exponential(CONSENT["rongcheng_mean_delay_days"], n))
    _consent(rng, chunk, s, rows[m], when[m], "city:371082", "rongcheng")

    lo, hi = s.window(18, 60)
    m = (hi > lo) & (rng.random(n) < CONSENT["commercial_share"])
    when = office_hours(rng, lo + rng.random(n) * np.clip(hi - lo, 0, None))
    _consent(rng, chunk, s, rows[m], when[m], COMMERCIAL_PORTAL, "commercial")

    lo, hi = s.window(18)
    r, d = poisson_times(rng, lo, hi, CONSENT["self_inquiry_rate"])
    d = office_hours(rng, d)
    chunk.add(
        "inquiry.made",
        r,
        d,
        CREDIT_REFERENCE,
        json_attrs(len(r), requester=(CREDIT_REFERENCE, True), purpose=("self", True)),
    )


def _consent(
    rng: np.random.Generator,
    chunk: Chunk,
    s: Subjects,
    rows: np.ndarray,
    when: np.ndarray,
    source: str,
    system: str,
) -> None:
    ok = _keep(when, s)
    rows, when = rows[ok], when[ok]
    chunk.add(
        "subject.consent_granted", rows, when, source, json_attrs(len(rows), system=(system, True))
    )
    later = office_hours(rng, when + rng.uniform(30, 1500, len(rows)))
    m = (rng.random(len(rows)) < CONSENT["withdraw_share"]) & (later < s.end)
    chunk.add(
        "subject.consent_withdrawn",
        rows[m],
        later[m],
        source,
        json_attrs(int(m.sum()), system=(system, True)),
    )


def organization_registry(
    rng: np.random.Generator,
    chunk: Chunk,
    s: Subjects,
    orgs: Organizations,
    rows_in_all: slice,
    persons: Persons,
) -> None:
    """Name and legal representative at founding; representatives change now and then."""
    n = len(s.born)
    rows = np.arange(n)
    founded = s.born.astype(np.float64)
    chunk.add(
        "registry.name",
        rows,
        founded,
        MARKET_REGULATOR,
        json_attrs(n, name=(orgs.name[rows_in_all], True)),
        date_only=True,
    )
    reps = persons.ids(orgs.legal_rep[rows_in_all])
    chunk.add(
        "registry.legal_representative",
        rows,
        founded,
        MARKET_REGULATOR,
        json_attrs(n, person_id=(reps, True)),
        date_only=True,
    )
    lo, hi = s.window()
    r, d = poisson_times(rng, lo, hi, CONSENT["legal_rep_change_rate"])
    d = office_hours(rng, d)
    new = pick_adults(rng, persons, d.astype(np.int64))
    chunk.add(
        "registry.legal_representative",
        r,
        d,
        MARKET_REGULATOR,
        json_attrs(len(r), person_id=(persons.ids(new), True)),
    )
