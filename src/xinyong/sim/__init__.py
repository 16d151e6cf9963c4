"""Synthetic populations: a deterministic (seeded) city of persons and
organizations and what they do over the years, written as Parquet record files
that pass intake, plus ground-truth labels for the commercial scorecard.

    from xinyong.sim import generate_city, labels
    city = generate_city("out/city", persons=100_000, organizations=5_000, seed=7)
    city.years      # records-YYYY.parquet with the instant each batch is known
    labels(city)    # subject_id, defaulted_next_12m

Who: persons with valid resident identity numbers (GB 11643) on real address
codes of the Weihai area (Rongcheng 371082 and its predecessors, Wendeng,
Rushan, Huancui) and a few migrants' birthplaces; ages shaped on an ageing
coastal county (about 17 % minors, who appear in records but must never be
listed); 85 % live in Rongcheng (records from `city:371082`), the rest elsewhere
in Weihai (`city:371000`). Organizations carry valid Unified Social Credit
Codes (GB 32100; embedded organization code per GB 11714), a registered name
and a legal representative who changes about every 25 years on average.

What: every rate is in ``xinyong.sim.rates`` (``rates_markdown()`` prints them)
as events per subject-year, population means, shifted per subject by a latent
risk r (lognormal, mean 1, sigma 0.9) as r**e / E[r**e]. Highlights:

- courts: liability judgments 0.8 % per adult-year (3 % per organization-year),
  risk exponent 1.5; about 30 % lead to a listing decision 2-13 months later
  (grounds: able_but_refuses 78 %, evades 7 %, asset reporting 6 %,
  consumption restriction 4 %, settlement 3 %, obstruction 2 %; extensions
  0-3 years only for the other grounds; 60 % of listings since 2020 get 30/60/90
  days' grace); outcomes obligation fulfilled 36 %, settlement 14 %, creditor
  withdrew 5 %, enforcement ended 15 %, listing revoked 2 %, none 28 %, after
  grace plus an exponential delay (mean 400 days). A few decisions wrongly name
  16-17-year-olds (0.05 % per year at that age).
- loans: 0.22 opened per person-year aged 18-75 (0.5 per organization-year);
  an arrears episode at 6 % per loan-year (risk exponent 1.8) runs monthly
  `loan.payment_overdue` records (30, 60, 90 ... days) and is cured in most
  cases; uncured episodes of 3+ months give a `finance.contract_breach` half the
  time; each application leaves an `inquiry.made`; the first one a
  `subject.consent_granted` for `financial`.
- municipal: red-light 6 %, jaywalking 3 %, waste missorting 4 % (from 2020),
  no-shows 2 %, late utility payment 4 %, volunteering 8 %, charity 6 %, blood
  donation 3 % per person-year, rarer offences down to 0.01 %; 0.5 % of
  tickets are revoked later (a fifth of those by the adjudicator).
- consents: 65 % of Rongcheng adults consent to `rongcheng` scoring after
  2021-03-01; 45 % of adults under 60 to `commercial`; 7 % of consents are
  withdrawn later.

Label: ``defaulted_next_12m`` is true for a person adult on ``label_at``
(default a year before the end) with, in the following 12 months, a payment
90+ days past due, a contract/guarantee/private-lending breach or a court
listing.
"""

from xinyong.sim.generate import CityFiles, YearFile, generate_city, labels, sources
from xinyong.sim.rates import rates_markdown

__all__ = ["CityFiles", "YearFile", "generate_city", "labels", "rates_markdown", "sources"]
