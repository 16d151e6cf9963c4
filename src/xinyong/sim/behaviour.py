"""What subjects do over the years, one chunk of subjects at a time.

Every rate here is per subject-year and is the population mean: a subject's
latent risk r (lognormal, mean 1) multiplies it as r**e / E[r**e], so the
documented rate is what the whole population shows. The table in
``xinyong.sim`` (``RATES``) is the one source of these numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from xinyong.sim.events import YEAR, Chunk, json_attrs, office_hours, poisson_times
from xinyong.sim.population import RISK_SIGMA
from xinyong.sim.rates import (
    COURT,
    GROUNDS,
    LOANS,
    MUNICIPAL,
    OUTCOMES,
    Municipal,
    day_of,
)

CITY = np.array(["city:371082", "city:371000"])
COURT_SOURCE = np.array(["court:371082-rongcheng", "court:371002-huancui"])
COURT_CODE = np.array(["鲁1082", "鲁1002"])
INTERMEDIATE = ("court:371000-weihai-intermediate", "鲁10")
LENDERS = np.array(
    ["lender:icbc-weihai", "lender:ccb-weihai", "lender:rongcheng-rcb", "lender:weihai-bank"]
)
LENDER_SHARE = np.array([0.3, 0.25, 0.3, 0.15])
UTILITY = {
    "heat": "utility:weihai-heat",
    "water": "utility:rongcheng-water",
    "power": "utility:state-grid-weihai",
}
MARKET_REGULATOR = "regulator:samr-weihai"
CREDIT_REFERENCE = "regulator:pbc-weihai"
COMMERCIAL_PORTAL = "lender:zhima-credit"
ADJUDICATOR = "adjudicator:weihai-credit-office"


def risk_multiplier(risk: np.ndarray, exponent: float) -> np.ndarray:
    """r**e scaled so that its population mean is 1."""
    if exponent == 0:
        return np.ones(len(risk))
    mean = np.exp(RISK_SIGMA**2 * (exponent**2 - exponent) / 2)
    return np.asarray(risk, dtype=np.float64) ** exponent / mean


def year_of(days: np.ndarray) -> np.ndarray:
    d = np.datetime64("1970-01-01", "D") + np.floor(days).astype("timedelta64[D]")
    return d.astype("datetime64[Y]").astype(np.int64) + 1970


@dataclass
class Subjects:
    """The chunk's subjects and the simulation window (local day numbers)."""

    is_person: bool
    born: np.ndarray  # birth day (persons) or founding day (organizations)
    risk: np.ndarray
    residence: np.ndarray
    start: int
    end: int
    defaults: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def window(self, min_age: float = 0, max_age: float = 200) -> tuple[np.ndarray, np.ndarray]:
        if not self.is_person:
            lo = np.maximum(self.born, self.start).astype(np.float64)
            return lo, np.full(len(lo), float(self.end))
        lo = np.maximum(self.born + min_age * YEAR, self.start)
        hi = np.minimum(self.born + max_age * YEAR, self.end)
        return lo, hi

    def default(self, rows: np.ndarray, days: np.ndarray) -> None:
        self.defaults.append((rows, days))


def _keep(days: np.ndarray, s: Subjects) -> np.ndarray:
    return (days >= s.start) & (days < s.end)


def municipal(rng: np.random.Generator, chunk: Chunk, s: Subjects) -> None:
    """Tickets, utility and market cases, good deeds; a few revoked later."""
    revocable: list[tuple[pa.Array, np.ndarray, np.ndarray, str | np.ndarray]] = []
    for spec in MUNICIPAL:
        rate = spec.person_rate if s.is_person else spec.org_rate
        if rate == 0:
            continue
        lo, hi = s.window(spec.min_age, spec.max_age)
        if spec.since:
            lo = np.maximum(lo, day_of(spec.since))
        rows, days = poisson_times(rng, lo, hi, rate, risk_multiplier(s.risk, spec.risk_exp))
        days = office_hours(rng, days)
        ok = _keep(days, s)
        rows, days = rows[ok], days[ok]
        n = len(rows)
        source: str | np.ndarray
        if spec.source.startswith("utility:"):
            source = UTILITY[spec.source.split(":")[1]]
        elif spec.source == "regulator":
            source = MARKET_REGULATOR
        elif spec.source == "lender":
            source = LENDERS[rng.choice(len(LENDERS), n, p=LENDER_SHARE)]
        else:
            source = CITY[s.residence[rows]]
        ids = chunk.add(spec.type, rows, days, source, _municipal_attrs(rng, chunk, spec, n))
        if spec.default:
            s.default(rows, days)
        if spec.revocable:
            revocable.append((ids, rows, days, source))
    for ids, rows, days, source in revocable:
        pick = rng.random(len(rows)) < COURT["ticket_revoked_share"]
        by_adjudicator = rng.random(len(rows)) < COURT["ticket_revoked_by_adjudicator_share"]
        for chosen, who, reason in (
            (pick & ~by_adjudicator, source, "issued in error"),
            (pick & by_adjudicator, ADJUDICATOR, "objection upheld"),
        ):
            when = days[chosen] + rng.uniform(5, 60, int(chosen.sum()))
            ok = when < s.end
            idx = np.flatnonzero(chosen)[ok]
            src = who if isinstance(who, str) else who[idx]
            n = len(idx)
            chunk.add(
                "record.revoked",
                rows[idx],
                when[ok],
                src,
                json_attrs(
                    n, target_record_id=(ids.take(pa.array(idx)), True), reason=(reason, True)
                ),
            )


def _municipal_attrs(rng: np.random.Generator, chunk: Chunk, spec: Municipal, n: int) -> pa.Array:
    key = spec.attribute
    if key == "ticket_no":
        attrs = {"ticket_no": (chunk.ids("T", n), True)}
        if spec.type == "transit.disorderly_conduct":
            kind = np.where(rng.random(n) < 0.55, "loud_music", "eating")
            attrs["kind"] = (kind, True)
        return json_attrs(n, **attrs)
    if key == "venue":
        venues = ["restaurant", "hotel", "hospital", "clinic", "sports-hall"]
        kind = rng.choice(venues, n, p=[0.45, 0.25, 0.15, 0.1, 0.05])
        return json_attrs(n, venue=(kind, True))
    if key == "amount":
        return json_attrs(n, amount=(np.maximum(1, rng.lognormal(5.0, 1.0, n)).astype(int), False))
    if key == "hours":
        return json_attrs(n, hours=(rng.integers(1, 41, n), False))
    prefix = {
        "case_no": "CASE-",
        "account_id": "U",
        "certificate_no": "BD",
        "citation_no": "JY",
        "contract_id": "K",
    }
    return json_attrs(n, **{key: (chunk.ids(prefix[key], n), True)})


def _case_numbers(chunk: Chunk, days: np.ndarray, court_code: np.ndarray, kind: str) -> pa.Array:
    n = len(days)
    serial = chunk.ids("", n)
    year = year_of(days).astype(str)
    return pa.array(
        np.char.add(
            np.char.add(np.char.add(np.char.add("(", year), ")"), court_code.astype(str)),
            np.char.add(kind, np.char.add(np.asarray(serial.to_pylist(), dtype=str), "号")),
        )
    )


def courts(rng: np.random.Generator, chunk: Chunk, s: Subjects) -> None:
    """Liability judgments; some debtors are listed; listings end by performance or not."""
    key = "person" if s.is_person else "organization"
    mult = risk_multiplier(s.risk, COURT["risk_exp"])
    lo, hi = s.window(18)
    rows, days = poisson_times(rng, lo, hi, COURT[f"judgment_rate_{key}"], mult)
    if s.is_person:  # courts occasionally err about 16-17-year-olds; the engine must not list them
        lo_m, hi_m = s.window(16, 18)
        r_m, d_m = poisson_times(rng, lo_m, hi_m, COURT["minor_listing_rate"], mult)
        rows, days = np.r_[rows, r_m], np.r_[days, d_m]
    days = office_hours(rng, days)
    n = len(rows)
    by_risk = rng.random(n) < 1 / (1 + np.exp(-(np.log(s.risk[rows]) + COURT["listing_logit"])))
    minor = np.zeros(n, dtype=bool)
    if s.is_person:
        minor = (days - s.born[rows]) < 18 * YEAR
    listed = by_risk | minor
    upper = rng.random(n) < COURT["intermediate_share"]
    src = np.where(upper, INTERMEDIATE[0], COURT_SOURCE[s.residence[rows]])
    code = np.where(upper, INTERMEDIATE[1], COURT_CODE[s.residence[rows]])
    liability = np.where(
        rng.random(n) < COURT["debt_share"], "court.debt_liability", "court.breach_liability"
    )
    for type_ in ("court.debt_liability", "court.breach_liability"):
        m = (liability == type_) & _keep(days, s)
        cases = _case_numbers(chunk, days[m], code[m], "民初")
        chunk.add(type_, rows[m], days[m], src[m], json_attrs(int(m.sum()), case_no=(cases, True)))

    # Listing a few months after judgment, when the debtor does not pay.
    lday = office_hours(rng, days + rng.uniform(60, 400, n))
    m = listed & _keep(lday, s)
    rows, lday, src, code = rows[m], lday[m], src[m], code[m]
    n = len(rows)
    ground = rng.choice(list(GROUNDS), n, p=list(GROUNDS.values()))
    ext = np.where(ground == "able_but_refuses", 0, rng.choice(4, n, p=[0.7, 0.15, 0.1, 0.05]))
    graced = (lday >= day_of("2020-01-01")) & (rng.random(n) < COURT["grace_share_since_2020"])
    grace = np.where(graced, rng.choice([30, 60, 90], n), 0)
    cases = _case_numbers(chunk, lday, code, "执")
    chunk.add(
        "court.listing_decision",
        rows,
        lday,
        src,
        json_attrs(
            n,
            case_no=(cases, True),
            ground=(ground, True),
            extension_years=(ext, False),
            grace_days=(grace, False),
        ),
    )
    s.default(rows, lday)

    outcome = rng.choice(list(OUTCOMES), n, p=list(OUTCOMES.values()))
    delay = np.where(
        outcome == "court.listing_revoked",
        rng.uniform(3, 30, n),
        grace + rng.exponential(COURT["outcome_mean_days"], n),
    )
    oday = office_hours(rng, lday + delay)
    for type_ in OUTCOMES:
        m = (outcome == type_) & (oday < s.end)
        k = int(m.sum())
        attrs: dict[str, tuple[pa.Array | np.ndarray, bool]] = {
            "case_no": (cases.filter(pa.array(m)), True)
        }
        if type_ == "court.enforcement_ended":
            reasons = ["no_assets_found", "terminated", "suspended", "not_enforced"]
            attrs["reason"] = (rng.choice(reasons, k, p=[0.6, 0.2, 0.15, 0.05]), True)
        elif type_ == "court.listing_revoked":
            attrs["reason"] = (rng.choice(["wrongful", "inaccurate"], k), True)
        if type_ != "none":
            chunk.add(type_, rows[m], oday[m], src[m], json_attrs(k, **attrs))


def loans(rng: np.random.Generator, chunk: Chunk, s: Subjects) -> None:
    """Applications (inquiries), loans, arrears episodes, cures, closures, breaches."""
    key = "person" if s.is_person else "organization"
    lo, hi = s.window(18, 75)
    rows, days = poisson_times(rng, lo, hi, LOANS[f"open_rate_{key}"])
    days = office_hours(rng, days)
    n = len(rows)
    kinds = list(LOANS[f"kinds_{key}"])
    kind = rng.choice(kinds, n, p=list(LOANS[f"kinds_{key}"].values()))
    lender = LENDERS[rng.choice(len(LENDERS), n, p=LENDER_SHARE)]
    # Applications that were declined add inquiries without a loan.
    d_rows, d_days = poisson_times(
        rng, lo, hi, LOANS["declined_rate"], risk_multiplier(s.risk, 1.0)
    )
    d_days = office_hours(rng, d_days)
    app_rows = np.r_[rows, d_rows]
    app_day = np.r_[days - rng.uniform(1, 20, n), d_days - rng.uniform(0, 5, len(d_days))]
    app_lender = np.r_[lender, LENDERS[rng.choice(len(LENDERS), len(d_rows), p=LENDER_SHARE)]]
    app_kind = np.r_[kind, np.full(len(d_rows), "consumer")]
    ok = _keep(app_day, s)
    purpose = np.where(app_kind == "credit_card", "credit_card_approval", "loan_approval")
    chunk.add(
        "inquiry.made",
        app_rows[ok],
        app_day[ok],
        app_lender[ok],
        json_attrs(int(ok.sum()), requester=(app_lender[ok], True), purpose=(purpose[ok], True)),
    )
    if s.is_person:  # the first application carries the consent to credit reporting
        order = np.lexsort((app_day[ok], app_rows[ok]))
        r, d, lend = app_rows[ok][order], app_day[ok][order], app_lender[ok][order]
        first = np.r_[True, r[1:] != r[:-1]] if len(r) else np.zeros(0, bool)
        chunk.add(
            "subject.consent_granted",
            r[first],
            d[first] - 0.01,
            lend[first],
            json_attrs(int(first.sum()), system=("financial", True)),
        )

    lo_amt, sigma, term_lo, term_hi = (
        np.array([LOANS["terms"][k][i] for k in kind]) for i in range(4)
    )
    amount = (np.exp(rng.normal(np.log(np.maximum(lo_amt, 1)), sigma)) // 100 * 100).astype(int)
    accounts = chunk.ids("A", n)
    chunk.add(
        "loan.opened",
        rows,
        days,
        lender,
        json_attrs(n, account_id=(accounts, True), kind=(kind, True), amount=(amount, False)),
    )
    term = rng.uniform(term_lo, term_hi) * YEAR
    life = np.minimum(term, s.end - days)
    mult = risk_multiplier(s.risk[rows], LOANS["arrears_risk_exp"])
    p_episode = 1 - np.exp(-LOANS["arrears_rate"] * mult * life / YEAR)
    episode = rng.random(n) < p_episode
    ep_start = days + rng.random(n) * life
    r = s.risk[rows]
    months = 1 + rng.geometric(np.clip(1 - 0.3 * np.sqrt(r), 0.3, 0.95)) - 1
    cured = rng.random(n) < np.clip(0.97 - 0.12 * r, 0.3, 0.97)
    idx = np.repeat(np.flatnonzero(episode), months[episode])
    k = np.concatenate([np.arange(1, m + 1) for m in months[episode]]) if len(idx) else idx
    when = office_hours(rng, ep_start[idx] + 30 * k)
    ok = when < s.end
    idx, k, when = idx[ok], k[ok], when[ok]
    installment = np.maximum(100, amount[idx] // 24)
    chunk.add(
        "loan.payment_overdue",
        rows[idx],
        when,
        lender[idx],
        json_attrs(
            len(idx),
            account_id=(accounts.take(pa.array(idx)), True),
            days_past_due=(30 * k, False),
            amount_due=(installment * k, False),
        ),
    )
    serious = 30 * k >= 90
    s.default(rows[idx][serious], when[serious])
    end_ep = ep_start + 30 * months + rng.uniform(1, 25, n)
    m = episode & cured & (end_ep < s.end)
    acct = {"account_id": (accounts.filter(pa.array(m)), True)}
    chunk.add(
        "loan.overdue_cured",
        rows[m],
        office_hours(rng, end_ep[m]),
        lender[m],
        json_attrs(int(m.sum()), **acct),
    )
    breach_day = office_hours(rng, end_ep + rng.uniform(10, 60, n))
    m = episode & ~cured & (months >= 3) & (breach_day < s.end) & (rng.random(n) < 0.5)
    chunk.add(
        "finance.contract_breach",
        rows[m],
        breach_day[m],
        lender[m],
        json_attrs(int(m.sum()), contract_id=(accounts.filter(pa.array(m)), True)),
    )
    s.default(rows[m], breach_day[m])
    close = office_hours(rng, days + term)
    m = (~episode | cured) & (close < s.end)
    chunk.add(
        "loan.closed",
        rows[m],
        close[m],
        lender[m],
        json_attrs(int(m.sum()), account_id=(accounts.filter(pa.array(m)), True)),
    )
    m = rng.random(n) < LOANS["post_loan_check_share"]
    pday = office_hours(rng, days + rng.random(n) * life)
    m &= pday < s.end
    chunk.add(
        "inquiry.made",
        rows[m],
        pday[m],
        lender[m],
        json_attrs(
            int(m.sum()), requester=(lender[m], True), purpose=("post_loan_management", True)
        ),
    )
