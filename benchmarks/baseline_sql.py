"""The baseline: the whole evaluation of the shipped packs as hand-written DuckDB SQL.

This is what a developer would write for DuckDB alone, by hand from the packs'
YAML and the legal texts they cite (SOURCES.md), for one instant ``as_of`` as
known at ``known_at``: the scores of the Rongcheng points and of the commercial
scorecard (windows, caps, episodes, consent, minimum age, minimum history,
retention, revocations), the entries of every list with their periods and end
reasons (grace periods in working days, terms and extensions, removals,
supersession, revocation, retention from the end of the conduct), and every
consequence (grades; list entries, also those reaching an organization's legal
representative until a court transfers the restriction).

It writes ``b_scores``, ``b_list_entries`` and ``b_consequences`` (temporary
tables with the columns of ``scores``, ``list_entries`` and ``consequences``),
which the benchmark fingerprints and compares with the engine's point
evaluation (``evaluate(store, as_of=...)``, materialized) row for row.

The SQL text holds the packs' record types, terms and scorecard bins as written
in the YAML; values that vary per call (as_of, known_at) are parameters, and the
Rongcheng rules and the consequence texts (legal bases, remedies) are registered
Arrow tables built from the installed pack. It is deliberately not generated
from the engine: it is the independent, hand-tuned reference for speed and
results. ``check_shape`` fails loudly when an installed pack moves away from
what this SQL assumes.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pyarrow as pa

from xinyong.packs.schema import Pack

FAR = "TIMESTAMP '9999-12-31 00:00:00'"

SETUP = """
CREATE OR REPLACE TEMP MACRO b_local(ts) AS ts + INTERVAL 8 HOUR;
CREATE OR REPLACE TEMP MACRO b_age(birth, ts) AS
    year(b_local(ts)) - year(birth)
    - CASE WHEN month(birth) * 100 + day(birth) > month(b_local(ts)) * 100 + day(b_local(ts))
           THEN 1 ELSE 0 END;
CREATE OR REPLACE TEMP MACRO b_plus_years(ts, n) AS
    ts + INTERVAL 8 HOUR + to_years(CAST(n AS INTEGER)) - INTERVAL 8 HOUR;
CREATE OR REPLACE TEMP MACRO b_plus_months(ts, n) AS
    ts + INTERVAL 8 HOUR + to_months(CAST(n AS INTEGER)) - INTERVAL 8 HOUR;
-- The records known at known_at that occurred by as_of.
CREATE OR REPLACE TEMP MACRO b_ledger(as_of, known_at) AS TABLE
SELECT * FROM records WHERE recorded_at <= known_at AND occurred_at <= as_of;

-- The first known revocation of each record (any system's: revocations are registry-level).
CREATE OR REPLACE TEMP TABLE b_revocations AS
SELECT attr_target_record_id AS target_record_id, occurred_at AS revoked_at,
       record_id AS revoking_record_id
FROM b_ledger($as_of, $known_at) WHERE type = 'record.revoked'
QUALIFY row_number() OVER (PARTITION BY attr_target_record_id
                           ORDER BY occurred_at, record_id) = 1;

CREATE OR REPLACE TEMP TABLE b_scores AS SELECT * FROM scores LIMIT 0;
CREATE OR REPLACE TEMP TABLE b_list_entries AS SELECT * FROM list_entries LIMIT 0;
CREATE OR REPLACE TEMP TABLE b_consequences AS SELECT * FROM consequences LIMIT 0;
"""

# ---------------------------------------------------------------------- Rongcheng
RONGCHENG = """
-- Rong Zheng Fa [2021] No. 3: consenting adults, 1000 points, deductions and rewards;
-- scored records count for 2 years (illustrative retention).
CREATE OR REPLACE TEMP TABLE b_rc AS
SELECT k.record_id, k.subject_id, k.subject_kind, k.birth_date, k.type, k.occurred_at,
       k.attr_system, k.attr_days_past_due, CAST(k.attr_account_id AS VARCHAR) AS account
FROM b_ledger($as_of, $known_at) k
WHERE k.type IN (SELECT type FROM bench_rc_scope)
  AND k.source_kind IN ('city', 'utility', 'regulator', 'court', 'lender', 'adjudicator')
  AND NOT EXISTS (SELECT 1 FROM b_revocations r WHERE r.target_record_id = k.record_id)
  AND (k.type NOT IN (SELECT type FROM bench_rc_rules)
       OR b_plus_years(k.occurred_at, 2) > $as_of);

INSERT INTO b_scores BY NAME
WITH population AS (
    SELECT subject_id, max(subject_kind) AS kind, max(birth_date) AS birth,
        max(occurred_at) FILTER (WHERE type = 'subject.consent_granted'
                                 AND attr_system = 'rongcheng') AS granted,
        max(occurred_at) FILTER (WHERE type = 'subject.consent_withdrawn'
                                 AND attr_system = 'rongcheng') AS withdrawn
    FROM b_rc GROUP BY subject_id
),
scored AS (
    SELECT subject_id FROM population
    WHERE kind = 'person' AND b_age(birth, $as_of) >= 18
      AND granted IS NOT NULL AND (withdrawn IS NULL OR granted > withdrawn)
),
matched AS (   -- conduct at 18 or older, from the pack's effective date, in the window
    SELECT v.record_id, v.subject_id, v.occurred_at, v.account, r.rule, r.max_count,
        r.episode,
        r.points * CASE WHEN r.multiplied THEN ceil(v.attr_days_past_due / 30) ELSE 1 END
            AS points
    FROM b_rc v JOIN bench_rc_rules r ON v.type = r.type
    WHERE v.occurred_at >= $rc_from
      AND (r.window_days IS NULL OR v.occurred_at >= $as_of - to_days(r.window_days))
      AND b_age(v.birth_date, v.occurred_at) >= 18
      AND (NOT r.multiplied OR v.attr_days_past_due IS NOT NULL)
),
episodes AS (  -- loan arrears: one deduction per episode, ended by a cure or a closing
    SELECT m.record_id, coalesce(m.account, '#' || m.record_id) AS epkey,
        count(e.occurred_at) AS episode
    FROM matched m LEFT JOIN b_rc e
      ON e.subject_id = m.subject_id AND e.type IN ('loan.overdue_cured', 'loan.closed')
     AND e.account = coalesce(m.account, '#' || m.record_id) AND e.occurred_at < m.occurred_at
    WHERE m.episode
    GROUP BY m.record_id, m.account
),
deepest AS (
    SELECT m.* FROM matched m JOIN episodes e USING (record_id)
    QUALIFY row_number() OVER (PARTITION BY m.subject_id, m.rule, e.epkey, e.episode
            ORDER BY abs(m.points) DESC, m.occurred_at DESC, m.record_id DESC) = 1
    UNION ALL
    SELECT * FROM matched WHERE NOT episode
),
counted AS (   -- most-recent-N caps
    SELECT subject_id, points FROM deepest
    QUALIFY max_count IS NULL OR row_number() OVER (PARTITION BY subject_id, rule
            ORDER BY occurred_at DESC, record_id DESC) <= max_count
),
totals AS (
    SELECT s.subject_id, greatest(1000.0 + coalesce(sum(c.points), 0), 0.0) AS score
    FROM scored s LEFT JOIN counted c USING (subject_id)
    GROUP BY s.subject_id
)
SELECT 'rongcheng' AS system, subject_id, score,
    CASE WHEN score >= 1050 THEN 'AAA' WHEN score >= 1030 THEN 'AA' WHEN score >= 960 THEN 'A'
         WHEN score >= 850 THEN 'B' WHEN score >= 600 THEN 'C' ELSE 'D' END AS grade
FROM totals;
"""

# ---------------------------------------------------------------------- commercial
COMMERCIAL = """
-- State Council Order No. 631, Art. 16: negative information kept 5 years (arrears: from
-- the cure or closing of the account; findings and late payments: from their day).
CREATE OR REPLACE TEMP TABLE b_cm AS
WITH s AS (
    SELECT k.record_id, k.subject_id, k.subject_kind, k.birth_date, k.type, k.occurred_at,
           k.attr_system, k.attr_days_past_due, k.attr_account_id, k.attr_purpose, k.attr_amount
    FROM b_ledger($as_of, $known_at) k
    WHERE k.type IN ('loan.opened', 'loan.payment_overdue', 'loan.overdue_cured', 'loan.closed',
                     'finance.contract_breach', 'finance.private_lending_breach',
                     'finance.guarantee_breach', 'court.breach_liability',
                     'court.debt_liability', 'utility.late_payment', 'inquiry.made',
                     'registry.name', 'subject.consent_granted', 'subject.consent_withdrawn')
      AND k.source_kind IN ('lender', 'regulator', 'court', 'utility', 'city', 'adjudicator',
                            'registry')
      AND NOT EXISTS (SELECT 1 FROM b_revocations r WHERE r.target_record_id = k.record_id)
),
ended AS (
    SELECT o.record_id, min(e.occurred_at) AS ended_at
    FROM s o JOIN s e ON e.subject_id = o.subject_id AND e.attr_account_id = o.attr_account_id
        AND e.occurred_at >= o.occurred_at AND e.type IN ('loan.overdue_cured', 'loan.closed')
    WHERE o.type = 'loan.payment_overdue'
    GROUP BY o.record_id
)
SELECT s.* FROM s LEFT JOIN ended USING (record_id)
WHERE CASE
    WHEN s.type IN ('loan.overdue_cured', 'court.breach_liability', 'court.debt_liability',
                    'finance.contract_breach', 'finance.private_lending_breach',
                    'finance.guarantee_breach', 'utility.late_payment')
        THEN b_plus_years(s.occurred_at, 5) > $as_of
    WHEN s.type = 'loan.payment_overdue'
        THEN ended.ended_at IS NULL OR b_plus_years(ended.ended_at, 5) > $as_of
    ELSE true END;

INSERT INTO b_scores BY NAME
WITH agg AS (
    SELECT subject_id, max(subject_kind) AS kind, max(birth_date) AS birth,
        max(occurred_at) FILTER (WHERE type = 'subject.consent_granted'
                                 AND attr_system = 'commercial') AS granted,
        max(occurred_at) FILTER (WHERE type = 'subject.consent_withdrawn'
                                 AND attr_system = 'commercial') AS withdrawn,
        count(*) FILTER (WHERE type = 'loan.opened'
                         AND b_plus_months(occurred_at, 6) <= $as_of) AS history,
        CAST(max(attr_days_past_due) FILTER (WHERE type = 'loan.payment_overdue'
             AND occurred_at >= $as_of - INTERVAL 730 DAY) AS DOUBLE) AS max_dpd,
        max(occurred_at) FILTER (WHERE type = 'loan.payment_overdue') AS last_overdue,
        count(*) FILTER (WHERE type IN ('court.breach_liability', 'court.debt_liability',
                                        'finance.contract_breach',
                                        'finance.private_lending_breach',
                                        'finance.guarantee_breach')
                         AND occurred_at >= $as_of - INTERVAL 1826 DAY) AS liabilities,
        count(*) FILTER (WHERE type = 'utility.late_payment'
                         AND occurred_at >= $as_of - INTERVAL 730 DAY) AS utility_late,
        count(*) FILTER (WHERE type = 'inquiry.made'
                         AND attr_purpose IN ('loan_approval', 'credit_card_approval')
                         AND occurred_at >= $as_of - INTERVAL 183 DAY) AS inquiries,
        count(*) FILTER (WHERE type = 'loan.opened'
                         AND occurred_at >= $as_of - INTERVAL 1826 DAY) AS opened,
        count(*) FILTER (WHERE type = 'loan.closed'
                         AND occurred_at >= $as_of - INTERVAL 1826 DAY) AS closed,
        CAST(sum(attr_amount) FILTER (WHERE type = 'loan.opened'
             AND occurred_at >= $as_of - INTERVAL 1826 DAY) AS DOUBLE) AS amount
    FROM b_cm GROUP BY subject_id
),
scored AS (
    SELECT *, CAST(floor((epoch($as_of) - epoch(last_overdue)) / 86400) AS DOUBLE) AS since,
        CAST(b_age(birth, $as_of) AS DOUBLE) AS age
    FROM agg
    WHERE kind = 'person' AND b_age(birth, $as_of) >= 18 AND history > 0
      AND granted IS NOT NULL AND (withdrawn IS NULL OR granted > withdrawn)
),
points AS (
    SELECT subject_id, 950.0
        + CASE WHEN max_dpd IS NULL THEN 0.0 WHEN max_dpd < 45 THEN -2.0
               WHEN max_dpd < 75 THEN -3.0 ELSE -4.0 END
        + CASE WHEN since IS NULL THEN 0.0 WHEN since < 78.5 THEN -209.0
               WHEN since < 324 THEN -118.0 WHEN since < 582 THEN -114.0
               WHEN since < 790.5 THEN -103.0 WHEN since < 1559 THEN -97.0 ELSE -92.0 END
        + CASE WHEN liabilities < 0.5 THEN 0.0 ELSE -102.0 END
        + CASE WHEN utility_late < 0.5 THEN 0.0 ELSE -53.0 END
        + CASE WHEN inquiries < 0.5 THEN 0.0 ELSE -52.0 END
        + CASE WHEN opened < 0.5 THEN 0.0 WHEN opened < 1.5 THEN -19.0
               WHEN opened < 2.5 THEN -36.0 WHEN opened < 3.5 THEN -37.0 ELSE -53.0 END
        + CASE WHEN closed < 0.5 THEN -84.0 WHEN closed < 1.5 THEN -66.0
               WHEN closed < 3.5 THEN -39.0 ELSE 0.0 END
        + CASE WHEN amount IS NULL THEN 0.0 WHEN amount < 7750 THEN -12.0
               WHEN amount < 787550 THEN -8.0 WHEN amount < 1249550 THEN -8.0 ELSE -5.0 END
        + CASE WHEN age IS NULL THEN -26.0 WHEN age < 19.5 THEN 0.0 WHEN age < 37.5 THEN -23.0
               WHEN age < 58.5 THEN -26.0 ELSE -30.0 END AS raw
    FROM scored
)
SELECT 'commercial' AS system, subject_id, least(greatest(raw, 350.0), 950.0) AS score,
    CASE WHEN least(greatest(raw, 350.0), 950.0) >= 700 THEN 'excellent'
         WHEN least(greatest(raw, 350.0), 950.0) >= 650 THEN 'very_good'
         WHEN least(greatest(raw, 350.0), 950.0) >= 600 THEN 'good'
         WHEN least(greatest(raw, 350.0), 950.0) >= 550 THEN 'fair'
         WHEN least(greatest(raw, 350.0), 950.0) >= 350 THEN 'poor' END AS grade
FROM points;
"""

# ------------------------------------------------------ lists of dishonest debtors
# Fa Shi [2017] No. 7: six grounds (Art. 1), minors never listed (Art. 4), ground (1)
# open-ended until a deletion trigger (Art. 10), grounds (2)-(6) 2 years plus an
# extension (Art. 2), the court's early deletion ends a termed listing, a later
# decision on the same case extends and never shortens; grace periods in working days
# (Fa Fa [2019] No. 35; Civil Procedure Law Art. 85). The same list is recorded in the
# credit report (financial pack, Art. 8 ¶2), kept 5 years from the deletion there
# (State Council Order No. 631, Art. 16). ``{system}``/``{kinds}``/``{retention}``
# below are the two packs' fixed texts (see DEBTOR_PACKS), never input.
DEBTORS = """
CREATE OR REPLACE TEMP TABLE b_scope AS
SELECT k.record_id, k.subject_id, k.subject_kind, k.birth_date, k.type, k.occurred_at,
       CAST(k.attr_case_no AS VARCHAR) AS key, k.attr_ground, k.attr_grace_days,
       k.attr_extension_years
FROM b_ledger($as_of, $known_at) k
WHERE k.type IN ('court.listing_decision', 'court.obligation_fulfilled',
                 'court.settlement_performed', 'court.creditor_withdrew',
                 'court.enforcement_ended', 'court.listing_revoked', 'court.early_deletion')
  AND k.source_kind IN ({kinds});

CREATE OR REPLACE TEMP TABLE b_entries AS
WITH listed AS (
    SELECT record_id, subject_id, key, occurred_at,
        coalesce(attr_ground = 'able_but_refuses', false) AS open_ended,
        coalesce(CAST(attr_grace_days AS BIGINT), 0) AS grace,
        date_trunc('day', b_local(occurred_at))
            + to_days(CAST(coalesce(CAST(attr_grace_days AS BIGINT), 0) AS INTEGER)) AS last_day,
        coalesce(CAST(attr_extension_years AS BIGINT), 0) AS extension
    FROM b_scope
    WHERE type = 'court.listing_decision' AND subject_kind IN ('person', 'organization')
      AND occurred_at >= TIMESTAMP '2017-04-30 16:00:00'
      AND coalesce(attr_ground IN ('able_but_refuses', 'obstructs_enforcement',
                   'evades_enforcement', 'violates_asset_reporting',
                   'violates_consumption_restriction', 'refuses_settlement'), false)
      AND NOT coalesce(b_age(birth_date, occurred_at) < 18, false)
),
decisions AS (   -- the grace period ends 00:00 local after its last (working) day
    SELECT l.record_id, l.subject_id, l.key, l.occurred_at, l.open_ended, l.extension,
        CASE WHEN l.grace > 0
             THEN coalesce(c.hnext, l.last_day) + INTERVAL 1 DAY - INTERVAL 8 HOUR
             ELSE l.occurred_at END AS start_at
    FROM listed l LEFT JOIN bench_calendar c ON c.hday = l.last_day
),
live AS (   -- in scope, not revoked
    SELECT * FROM b_scope s
    WHERE NOT EXISTS (SELECT 1 FROM b_revocations r WHERE r.target_record_id = s.record_id)
),
{retention}
removals AS (
    SELECT d.record_id, r.occurred_at AS rem_at, r.record_id AS rem_id
    FROM decisions d JOIN live r
      ON r.subject_id = d.subject_id AND r.occurred_at >= d.occurred_at
     AND r.key IS NOT DISTINCT FROM d.key
     AND (r.type = 'court.listing_revoked'
          OR (d.open_ended AND r.type IN ('court.obligation_fulfilled',
              'court.settlement_performed', 'court.creditor_withdrew',
              'court.enforcement_ended'))
          OR (NOT d.open_ended AND r.type = 'court.early_deletion'))
    QUALIFY row_number() OVER (PARTITION BY d.record_id ORDER BY r.occurred_at, r.record_id) = 1
)
SELECT d.*, v.revoked_at, v.revoking_record_id, m.rem_at, m.rem_id,
    CASE WHEN d.open_ended THEN NULL
         ELSE b_plus_years(d.start_at, 2 + d.extension) END AS term_end,
    retained.retention_end,
    least(coalesce(v.revoked_at, {far}), coalesce(m.rem_at, {far}),
          coalesce(CASE WHEN d.open_ended THEN NULL
                        ELSE b_plus_years(d.start_at, 2 + d.extension) END, {far}),
          coalesce(retained.retention_end, {far})) AS own_end
FROM decisions d
LEFT JOIN b_revocations v ON v.target_record_id = d.record_id
LEFT JOIN removals m USING (record_id)
LEFT JOIN retained USING (record_id);

INSERT INTO b_list_entries BY NAME
WITH successors AS (
    SELECT e.record_id, s.start_at AS sup_at, s.record_id AS sup_id
    FROM b_entries e JOIN b_entries s
      ON s.subject_id = e.subject_id AND s.key IS NOT DISTINCT FROM e.key
     AND (s.occurred_at > e.occurred_at
          OR (s.occurred_at = e.occurred_at AND s.record_id > e.record_id))
     AND s.own_end >= e.own_end
    WHERE s.revoked_at IS NULL
    QUALIFY row_number() OVER (PARTITION BY e.record_id ORDER BY s.occurred_at, s.record_id) = 1
),
ends AS (
    SELECT e.*, p.sup_at, p.sup_id,
        least(e.own_end, coalesce(p.sup_at, {far})) AS end_at
    FROM b_entries e LEFT JOIN successors p USING (record_id)
)
SELECT '{system}' AS system, 'dishonest_debtors' AS list_id, subject_id, key,
    record_id AS entry_record_id, occurred_at, start_at,
    CASE WHEN end_at < {far} THEN end_at END AS end_at,
    CASE WHEN end_at = {far} THEN NULL
         WHEN end_at = revoked_at THEN 'revoked' WHEN end_at = rem_at THEN 'removal'
         WHEN end_at = sup_at THEN 'superseded' WHEN end_at = term_end THEN 'term'
         ELSE 'retention' END AS end_reason,
    CASE WHEN end_at = {far} THEN NULL
         WHEN end_at = revoked_at THEN revoking_record_id WHEN end_at = rem_at THEN rem_id
         WHEN end_at = sup_at THEN sup_id END AS ending_record_id
FROM ends;
"""

NO_RETENTION = """retained AS (SELECT NULL::VARCHAR AS record_id, NULL::TIMESTAMP AS retention_end
                 WHERE false),"""
CONDUCT_END_RETENTION = """retained AS (   -- 5 years from the deletion of the listing
    SELECT d.record_id, b_plus_years(min(e.occurred_at), 5) AS retention_end
    FROM decisions d JOIN live e
      ON e.subject_id = d.subject_id AND e.key = d.key AND e.occurred_at >= d.occurred_at
     AND e.type IN ('court.obligation_fulfilled', 'court.settlement_performed',
                    'court.creditor_withdrew', 'court.enforcement_ended',
                    'court.listing_revoked', 'court.early_deletion')
    GROUP BY d.record_id
),"""

DEBTOR_PACKS = {
    "judicial": ("'court', 'regulator', 'adjudicator'", NO_RETENTION),
    "financial": (
        "'lender', 'regulator', 'court', 'adjudicator', 'registry'",
        CONDUCT_END_RETENTION,
    ),
}

# ------------------------------------------------------ administrative penalties
ADMIN_PENALTY = """
-- NDRC: ordinary and serious penalties of organizations published 1 and 3 years.
INSERT INTO b_list_entries BY NAME
WITH decisions AS (
    SELECT record_id, subject_id, CAST(attr_decision_no AS VARCHAR) AS key, occurred_at,
        b_plus_years(occurred_at, CASE WHEN attr_severity = 'serious' THEN 3 ELSE 1 END)
            AS term_end
    FROM b_ledger($as_of, $known_at) k
    WHERE type = 'admin.penalty_decision' AND source_kind IN ('regulator', 'adjudicator')
      AND subject_kind = 'organization' AND occurred_at >= TIMESTAMP '2026-03-31 16:00:00'
      AND coalesce(attr_severity IN ('ordinary', 'serious'), false)
),
own AS (
    SELECT d.*, v.revoked_at, v.revoking_record_id,
        least(coalesce(v.revoked_at, {far}), d.term_end) AS own_end
    FROM decisions d LEFT JOIN b_revocations v ON v.target_record_id = d.record_id
),
successors AS (
    SELECT e.record_id, s.occurred_at AS sup_at, s.record_id AS sup_id
    FROM own e JOIN own s
      ON s.subject_id = e.subject_id AND s.key IS NOT DISTINCT FROM e.key
     AND (s.occurred_at > e.occurred_at
          OR (s.occurred_at = e.occurred_at AND s.record_id > e.record_id))
     AND s.own_end >= e.own_end
    WHERE s.revoked_at IS NULL
    QUALIFY row_number() OVER (PARTITION BY e.record_id ORDER BY s.occurred_at, s.record_id) = 1
),
ends AS (
    SELECT o.*, p.sup_at, p.sup_id, least(o.own_end, coalesce(p.sup_at, {far})) AS end_at
    FROM own o LEFT JOIN successors p USING (record_id)
)
SELECT 'admin_penalty' AS system, 'published_penalties' AS list_id, subject_id, key,
    record_id AS entry_record_id, occurred_at, occurred_at AS start_at, end_at,
    CASE WHEN end_at = revoked_at THEN 'revoked' WHEN end_at = sup_at THEN 'superseded'
         ELSE 'term' END AS end_reason,
    CASE WHEN end_at = revoked_at THEN revoking_record_id
         WHEN end_at = sup_at THEN sup_id END AS ending_record_id
FROM ends;
"""

# ---------------------------------------------------------------------- consequences
CONSEQUENCES = """
-- Grades at as_of: since as_of, open-ended.
INSERT INTO b_consequences BY NAME
SELECT s.system, s.subject_id, r.service, r.effect, r.rule_id, 'grade' AS basis_kind,
    s.grade AS basis_id, r.legal_basis, $as_of AS since, NULL AS until, r.remedy
FROM b_scores s JOIN bench_cons_rules r
  ON r.system = s.system AND r.basis_kind = 'grade' AND r.basis = s.grade;

-- List entries not over at as_of (also those still in their grace period).
CREATE OR REPLACE TEMP TABLE b_restricted AS
SELECT e.system, e.subject_id, e.key, e.list_id, e.start_at AS since, e.end_at AS until,
    r.service, r.effect, r.rule_id, r.legal_basis, r.remedy, r.reaches
FROM b_list_entries e JOIN bench_cons_rules r
  ON r.system = e.system AND r.basis_kind = 'list' AND r.basis = e.list_id
WHERE e.end_at IS NULL OR (e.end_at > $as_of AND e.start_at < e.end_at);

INSERT INTO b_consequences BY NAME
SELECT system, subject_id, service, effect, rule_id, 'list' AS basis_kind,
    list_id AS basis_id, legal_basis, since, until, remedy
FROM b_restricted WHERE reaches = 'subject';

-- An organization's restriction reaches its legal representative: the one in office
-- when the listing started, until the court transfers it to a successor (Fa Fa [2019]
-- No. 35, item 17(2)), and each person it is transferred to, until the next transfer.
INSERT INTO b_consequences BY NAME
WITH reps AS (
    SELECT subject_id AS org, CAST(attr_person_id AS VARCHAR) AS person,
        occurred_at AS rep_from,
        lead(occurred_at) OVER (PARTITION BY subject_id ORDER BY occurred_at, record_id)
            AS rep_until
    FROM b_ledger($as_of, $known_at) k
    WHERE type = 'registry.legal_representative'
      AND NOT EXISTS (SELECT 1 FROM b_revocations r WHERE r.target_record_id = k.record_id)
),
moves AS (
    SELECT subject_id AS org, CAST(attr_case_no AS VARCHAR) AS key,
        CAST(attr_person_id AS VARCHAR) AS person, occurred_at AS move_from,
        lead(occurred_at) OVER (PARTITION BY subject_id, CAST(attr_case_no AS VARCHAR)
                                ORDER BY occurred_at, record_id) AS move_until
    FROM b_ledger($as_of, $known_at) k
    WHERE type = 'court.restriction_transferred'
      AND NOT EXISTS (SELECT 1 FROM b_revocations r WHERE r.target_record_id = k.record_id)
),
first_move AS (
    SELECT org, key, min(move_from) AS first_at FROM moves WHERE person IS NOT NULL
    GROUP BY org, key
),
reached AS (
    SELECT b.*, p.person, b.since AS hold_from, f.first_at AS hold_until
    FROM b_restricted b
    JOIN reps p ON p.org = b.subject_id AND p.rep_from <= b.since
               AND (p.rep_until IS NULL OR p.rep_until > b.since)
    LEFT JOIN first_move f ON f.org = b.subject_id AND f.key IS NOT DISTINCT FROM b.key
    WHERE b.reaches = 'legal_representative' AND p.person IS NOT NULL
    UNION ALL
    SELECT b.*, m.person, m.move_from, m.move_until
    FROM b_restricted b
    JOIN moves m ON m.org = b.subject_id AND m.key IS NOT DISTINCT FROM b.key
    WHERE b.reaches = 'legal_representative' AND m.person IS NOT NULL
),
cut AS (
    SELECT *, greatest(since, hold_from) AS c_since,
        CASE WHEN until IS NULL THEN hold_until WHEN hold_until IS NULL THEN until
             ELSE least(until, hold_until) END AS c_until
    FROM reached
)
SELECT system, person AS subject_id, service, effect, rule_id, 'list' AS basis_kind,
    list_id AS basis_id, legal_basis, c_since AS since, c_until AS until, remedy,
    'legal_representative' AS via_relation, subject_id AS via_subject
FROM cut WHERE c_until IS NULL OR c_since < c_until;
"""


def _check_shape(packs: dict[str, Pack]) -> None:
    """Fail loudly when an installed pack no longer has the shape this SQL is written for."""
    rc = packs["rongcheng"]
    assert rc.score is not None and len(rc.retention) == 1 and rc.retention[0].years == 2
    for rule in rc.score.rules:
        assert rule.when == "subject.age >= 18", rule.when
        assert rule.multiplier in (None, "ceil(days_past_due / 30)"), rule.multiplier
        assert rule.cap_points is None and rule.applies_from is None
        assert rule.episode is None or (
            rule.episode.key == "account_id"
            and set(rule.episode.ended_by) == {"loan.overdue_cured", "loan.closed"}
        )
    assert set(rc.retention[0].types) == {r.type for r in rc.score.rules}
    cm = packs["commercial"]
    assert cm.score is not None and cm.score.scorecard is not None
    assert [f.feature for f in cm.score.scorecard.features] == [
        "max_days_past_due_24m",
        "days_since_overdue",
        "liabilities_5y",
        "utility_late_24m",
        "inquiries_6m",
        "loans_opened_5y",
        "loans_closed_5y",
        "loan_amount_5y",
        "age",
    ]
    for system in ("judicial", "financial"):
        (spec,) = packs[system].lists
        assert spec.id == "dishonest_debtors" and spec.key == "case_no"
    (spec,) = packs["admin_penalty"].lists
    assert spec.removal == [] and spec.start_delay_attribute is None
    assert not packs["admin_penalty"].consequences and not packs["financial"].consequences


def _consequence_rules(packs: dict[str, Pack]) -> pa.Table:
    """The packs' consequence rules with their legal bases and remedies (texts)."""
    rows = []
    for pack in packs.values():
        lists = {s.id: s for s in pack.lists}
        for rule in pack.consequences:
            if rule.list is not None:
                spec = lists[rule.list]
                kind, keys = "list", [rule.list]
                basis = rule.legal_basis or spec.legal_basis
                remedy = rule.remedy or spec.remedy or None
            else:
                assert rule.grades is not None and pack.score is not None
                kind, keys = "grade", list(rule.grades)
                basis = rule.legal_basis or pack.score.legal_basis
                remedy = rule.remedy or None
            for key in keys:
                rows.append(
                    {
                        "system": pack.system,
                        "basis_kind": kind,
                        "basis": key,
                        "service": rule.service,
                        "effect": rule.effect,
                        "rule_id": rule.id,
                        "legal_basis": basis,
                        "remedy": remedy,
                        "reaches": rule.reaches,
                    }
                )
    return pa.Table.from_pylist(rows, schema=pa.schema([(k, pa.string()) for k in rows[0]]))


def _calendar() -> pa.Table:
    from xinyong.calendar import non_working_days

    rows = non_working_days(date(1990, 1, 1), date(2099, 12, 31))
    return pa.table(
        {
            "hday": pa.array(
                [datetime(d.year, d.month, d.day) for d, _ in rows], pa.timestamp("us")
            ),
            "hnext": pa.array(
                [datetime(n.year, n.month, n.day) for _, n in rows], pa.timestamp("us")
            ),
        }
    )


def register(store: Any, packs: list[Pack]) -> None:
    """Register the pack tables the SQL reads (before timing)."""
    by_system = {p.system: p for p in packs}
    _check_shape(by_system)
    rc = by_system["rongcheng"]
    assert rc.score is not None
    rules = pa.table(
        {
            "rule": [r.id for r in rc.score.rules],
            "type": [r.type for r in rc.score.rules],
            "points": [float(r.points) for r in rc.score.rules],
            "multiplied": [r.multiplier is not None for r in rc.score.rules],
            "episode": [r.episode is not None for r in rc.score.rules],
            "window_days": pa.array([r.window_days for r in rc.score.rules], pa.int64()),
            "max_count": pa.array([r.max_count for r in rc.score.rules], pa.int64()),
        }
    )
    store.sql.register("bench_rc_rules", rules)
    store.sql.register("bench_rc_scope", pa.table({"type": rc.scope.record_types}))
    store.sql.register("bench_cons_rules", _consequence_rules(by_system))
    store.sql.register("bench_calendar", _calendar())


def statements() -> list[str]:
    """The baseline's statements, in order (each a fixed text)."""
    parts = [SETUP, RONGCHENG, COMMERCIAL]
    for system, (kinds, retention) in DEBTOR_PACKS.items():
        parts.append(DEBTORS.format(system=system, kinds=kinds, retention=retention, far=FAR))
    parts.append(ADMIN_PENALTY.format(far=FAR))
    parts.append(CONSEQUENCES)
    out = []
    for part in parts:
        out += [s.strip() for s in part.split(";\n") if s.strip() and not _comment_only(s)]
    return out


def _comment_only(s: str) -> bool:
    return all(line.strip().startswith("--") or not line.strip() for line in s.splitlines())


def run(store: Any, as_of: datetime, known_at: datetime, rc_from: datetime) -> None:
    """Run the baseline: fills b_scores, b_list_entries and b_consequences."""
    values = {"as_of": as_of, "known_at": known_at, "rc_from": rc_from}
    for sql in statements():
        used = {k: v for k, v in values.items() if f"${k}" in sql}
        store.sql.execute(sql, used)
