"""The simulator's rates: the one place they are written down.

Rates are events per subject-year (population means; a subject's latent risk
shifts its own rate, see ``xinyong.sim.behaviour.risk_multiplier``). They are
shaped on the published figures in SOURCES.md §7 (about 1 % of adults on the
dishonest-debtor list, some 2.5 M new listings and 2.8 M exits a year
nationally) and on ordinary city life; values with no published source are
plausible guesses, and ``rates_markdown()`` renders them for the README.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def day_of(iso_date: str) -> int:
    """Days since 1970-01-01 of a local (Asia/Shanghai) calendar date."""
    return int(np.datetime64(iso_date, "D").astype(np.int64))


@dataclass(frozen=True)
class Municipal:
    type: str
    person_rate: float
    org_rate: float
    attribute: str
    source: str = "city"  # city of residence | utility:<which> | regulator | lender
    min_age: float = 18
    max_age: float = 200
    risk_exp: float = 0.0
    since: str | None = None
    revocable: bool = False
    default: bool = False  # counts as a default for the ground-truth label


MUNICIPAL: tuple[Municipal, ...] = (
    Municipal(
        "traffic.red_light",
        0.06,
        0,
        "ticket_no",
        min_age=18,
        max_age=80,
        risk_exp=0.5,
        revocable=True,
    ),
    Municipal("traffic.jaywalking", 0.03, 0, "ticket_no", min_age=12, risk_exp=0.3, revocable=True),
    Municipal("transit.disorderly_conduct", 0.006, 0, "ticket_no", min_age=12, revocable=True),
    Municipal(
        "transit.card_fraud", 0.002, 0, "ticket_no", min_age=12, risk_exp=1.0, revocable=True
    ),
    Municipal("reservation.no_show", 0.02, 0.01, "venue", revocable=True),
    Municipal(
        "waste.missorting", 0.04, 0.05, "ticket_no", min_age=12, since="2020-01-01", revocable=True
    ),
    Municipal(
        "utility.late_payment",
        0.04,
        0.06,
        "account_id",
        source="utility:heat",
        risk_exp=1.0,
        revocable=True,
    ),
    Municipal(
        "utility.arrears_judgment", 0.0015, 0.003, "case_no", source="utility:heat", risk_exp=1.5
    ),
    Municipal(
        "utility.heating_tampering", 0.0005, 0.0005, "case_no", source="utility:heat", risk_exp=1.0
    ),
    Municipal("utility.theft", 0.0003, 0.0005, "case_no", source="utility:power", risk_exp=1.5),
    Municipal(
        "utility.equipment_destruction",
        0.0001,
        0.0001,
        "case_no",
        source="utility:water",
        risk_exp=1.0,
    ),
    Municipal(
        "market.pyramid_selling_or_fraud",
        0.0002,
        0.0005,
        "case_no",
        source="regulator",
        risk_exp=1.5,
    ),
    Municipal(
        "market.counterfeit_goods", 0.0003, 0.003, "case_no", source="regulator", risk_exp=1.0
    ),
    Municipal(
        "finance.private_lending_breach",
        0.001,
        0,
        "contract_id",
        source="lender",
        risk_exp=1.5,
        default=True,
    ),
    Municipal(
        "finance.guarantee_breach",
        0.0005,
        0.002,
        "contract_id",
        source="lender",
        risk_exp=1.5,
        default=True,
    ),
    Municipal(
        "finance.illegal_fundraising_investigation",
        0.00005,
        0.0005,
        "case_no",
        source="regulator",
        risk_exp=1.5,
    ),
    Municipal("civic.blood_donation", 0.03, 0, "certificate_no", max_age=60, risk_exp=-0.3),
    Municipal("civic.charity_donation", 0.06, 0.1, "amount", risk_exp=-0.3),
    Municipal("civic.volunteering", 0.08, 0, "hours", min_age=14, risk_exp=-0.3),
    Municipal("civic.heroic_act", 0.0002, 0, "citation_no"),
)

COURT: dict[str, float] = {
    "judgment_rate_person": 0.008,  # liability judgments per adult-year
    "judgment_rate_organization": 0.03,
    "risk_exp": 1.5,
    "debt_share": 0.65,  # debt_liability; the rest breach_liability
    # P(listed | judgment) = logistic(log r + listing_logit): about 30 % on average
    "listing_logit": -1.6,
    "minor_listing_rate": 0.0005,  # erroneous decisions on 16-17-year-olds
    "intermediate_share": 0.1,  # cases at the Weihai intermediate court
    "grace_share_since_2020": 0.6,  # SPC Fa Fa [2019] No. 35: 30/60/90 days' grace
    "outcome_mean_days": 400,  # after grace, exponential
    "ticket_revoked_share": 0.005,
    "ticket_revoked_by_adjudicator_share": 0.2,  # of the revoked tickets
}

GROUNDS: dict[str, float] = {
    "able_but_refuses": 0.78,
    "evades_enforcement": 0.07,
    "violates_asset_reporting": 0.06,
    "violates_consumption_restriction": 0.04,
    "refuses_settlement": 0.03,
    "obstructs_enforcement": 0.02,
}

# What ends a listing (the record type), if anything before the end of the run.
OUTCOMES: dict[str, float] = {
    "court.obligation_fulfilled": 0.36,
    "court.settlement_performed": 0.14,
    "court.creditor_withdrew": 0.05,
    "court.enforcement_ended": 0.15,
    "court.listing_revoked": 0.02,
    "none": 0.28,
}

LOANS: dict = {  # type: ignore[type-arg]
    "open_rate_person": 0.22,  # loans opened per person-year, ages 18-75
    "open_rate_organization": 0.5,
    "kinds_person": {"credit_card": 0.45, "consumer": 0.35, "mortgage": 0.12, "business": 0.08},
    "kinds_organization": {"business": 0.85, "credit_card": 0.15},
    # kind: (median amount yuan, lognormal sigma, term years low, high)
    "terms": {
        "credit_card": (20_000, 0.6, 3, 8),
        "consumer": (30_000, 0.8, 1, 3),
        "mortgage": (600_000, 0.5, 10, 30),
        "business": (300_000, 1.0, 1, 3),
    },
    "declined_rate": 0.05,  # inquiries without a loan, risk-weighted
    "arrears_rate": 0.06,  # arrears episodes per loan-year, r**1.8
    "arrears_risk_exp": 1.8,
    "post_loan_check_share": 0.15,
}

CONSENT: dict[str, float] = {
    "rongcheng_share": 0.65,  # of Rongcheng adults, from 2021-03-01 (Rong Zheng Fa [2021] 3)
    "rongcheng_mean_delay_days": 180,
    "commercial_share": 0.45,  # of adults under 60
    "withdraw_share": 0.07,
    "self_inquiry_rate": 0.02,
    "legal_rep_change_rate": 0.04,  # per organization-year
}


def rates_markdown() -> str:
    """The rates as Markdown tables (README-ready)."""
    lines = [
        "| record type | per person-year | per organization-year | ages | risk exponent |",
        "|---|---|---|---|---|",
    ]
    for m in MUNICIPAL:
        ages = f"{m.min_age:g}+" if m.max_age >= 200 else f"{m.min_age:g}-{m.max_age:g}"
        since = f" (from {m.since})" if m.since else ""
        lines.append(
            f"| `{m.type}`{since} | {m.person_rate:g} | {m.org_rate:g} | {ages} | {m.risk_exp:g} |"
        )
    lines += ["", "| court / loans / consent | value |", "|---|---|"]
    for table in (COURT, LOANS, CONSENT):
        for key, value in table.items():
            lines.append(f"| {key} | {value} |")
    lines += ["", "| listing ground | share |", "|---|---|"]
    lines += [f"| `{g}` | {p:.0%} |" for g, p in GROUNDS.items()]
    lines += ["", "| listing outcome | share |", "|---|---|"]
    lines += [f"| `{o}` | {p:.0%} |" for o, p in OUTCOMES.items()]
    return "\n".join(lines)
