"""The rule-pack format: one YAML file per credit system and version.

A pack is data that documents itself: every rule, list and consequence has an
id, a legal basis and (where the value is not in the cited text) an
``illustrative: true`` mark. Structural validity is checked here with pydantic;
the safeguards (special categories, family ties, unbounded lists, unrelated
domains) are the linter's job (``xinyong.packs.lint``), so that a regulator can
see every objection at once rather than the first one.

Semantics the engine implements (and the reference evaluator mirrors):

calendar   every date is an Asia/Shanghai local date (a bare date is 00:00
           local); years and months are counted on the local calendar; a period
           of N days does not count its first day and, when its last day is not a
           working day, ends on the next working day (Civil Procedure Law Art. 85,
           ``xinyong.calendar``); it is over at 00:00 local after its last day.
applies_from  a score rule or list counts records that occurred on or after its
           ``applies_from``, by default the pack's effective date (no retroactive
           rules, Legislation Law Art. 104; the linter refuses a detrimental rule
           that reaches back and wants a ``retroactive_basis`` for a favourable one).
scope      the only record types and source kinds the system may see.
score      score(S, T) = clamp(base + sum of points of every counted record),
           a record counting when: its type matches a rule, the rule's ``when``
           holds on its attributes (``subject.age`` is the age at the record's
           occurrence), it occurred in [applies_from, T], within the
           rule's ``window_days`` before T, is not past retention and not
           revoked; ``points * multiplier`` per record; with an ``episode``, only
           the record with the most points (in absolute value) of each episode
           (same key, no ending record between); per rule at most
           ``max_count`` records (the most recent) and at most ``cap_points`` in
           absolute value. No score when consent is required and the latest
           consent record for this system at T is not a grant, or when the
           subject is younger than ``min_age`` at T, or is not of
           ``subject_kinds``, or lacks the ``min_history`` ("insufficient data").
           Grade: the first band (ordered high to low) whose ``min`` is <= score.
           A ``scorecard`` replaces per-record points by features (aggregates
           of records) binned into points (the commercial system): numeric bins
           [lower, upper), categorical bins (a list of values; an unlisted
           value takes the missing bin), and a missing bin.
lists      an entry per record of ``entry_type`` (not excluded, ``when``
           holds); it starts when a period of ``start_delay_days`` (+ the value
           of ``start_delay_attribute``) days from the record is over (calendar,
           above) and ends at the earliest of: the term (first matching
           ``terms`` rule, plus ``extension_attribute`` years), the first removal
           record of the same subject and key occurring at or after the entry
           record (``applies_to``: any entry, open-ended ones or termed ones), the
           start of the next entry record of the same subject and key that lasts
           at least as long (a later decision may extend, never shorten), a
           revocation of the entry record. An open-ended term has no end but a
           removal.
consequences  while a list entry is active, or while the subject's grade is
           one of ``grades``, the subject (or the person the subject relates to
           along a declared legal-role relation) gets ``effect`` on
           ``service``. A relation with ``transferred_by`` keeps a list entry's
           restriction on the person who held the role when it started, until a
           transfer record of the same case moves it (engine/transfers.py).
process    due process as data (issue 9): the objection grounds the system accepts,
           the review and correction periods, the reconsideration window and its
           decision period (each in ``days`` or ``working_days``, counted from the
           local date of the step as Art. 85 counts, ``calendar.due_date``), whether
           a contested listing stays in force (``listing_in_force``; false suspends
           the list's consequences while an objection against its entry is
           pending), and credit repair. A pack with lists or grades must have one.
retention  records of ``types`` stop counting and showing ``years`` after
           they occurred, or after the conduct ended (a record of
           ``ended_by`` with the same ``key`` attribute).
"""

from __future__ import annotations

import builtins
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from xinyong.packs.expressions import parse

Effect = Literal["deny", "priority", "discount", "deposit_free"]
Dimension = Literal["credit_history", "behaviour", "capacity", "identity"]
SubjectKind = Literal["person", "organization"]


def _both_kinds() -> list[SubjectKind]:
    return ["person", "organization"]


_ID = r"^[a-z0-9][a-z0-9_.\-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_condition(value: str | None) -> str | None:
    if value is not None:
        parse(value)  # raises ExpressionError (a ValueError) with the position
    return value


class Meta(_Strict):
    system: str = Field(pattern=_ID)
    version: str
    effective_from: date
    title: str
    authority: str
    legal_basis: str
    description: str = ""


class Scope(_Strict):
    record_types: list[str]
    source_kinds: list[str]


class RelationUse(_Strict):
    """A legal-role relation (from the catalog) that consequences may reach along.

    ``transferred_by``: a record type (on the organization, with the list's key and a
    ``person_id``) by which a court moves a list entry's restriction from the person
    who held the role when the entry started to another. When set, a later change of
    the role in the registry does not move the restriction (Fa Fa [2019] No. 35,
    item 17(2)); without it, the restriction follows the role's tenure.
    """

    id: str
    legal_basis: str
    transferred_by: str | None = None
    transfer_basis: str = ""


class Episode(_Strict):
    """Records of one episode count once: the reports of the same ``key`` between two
    records of an ``ended_by`` type (e.g. the 30-, 60- and 90-day arrears reports of
    one account until the overdue is cured) count as the one with the most points
    in absolute value (the deepest delinquency)."""

    key: str
    ended_by: list[str]


class MinHistory(_Strict):
    """No score ("insufficient data") unless the subject has a record of ``types``
    that occurred at least ``months`` calendar months before the instant."""

    types: list[str]
    months: int = Field(ge=0)
    legal_basis: str = ""
    illustrative: bool = False


class ScoreRule(_Strict):
    id: str = Field(pattern=_ID)
    type: str
    points: float
    multiplier: str | None = None
    when: str | None = None
    window_days: int | None = Field(default=None, gt=0)
    max_count: int | None = Field(default=None, gt=0)
    cap_points: float | None = Field(default=None, gt=0)
    applies_from: date | None = None
    retroactive_basis: str = ""
    episode: Episode | None = None
    legal_basis: str = ""
    illustrative: bool = False
    note: str = ""

    _cond = field_validator("when", "multiplier")(_check_condition)


class GradeBand(_Strict):
    grade: str
    min: float | None = None
    illustrative: bool = False


class ScorecardBin(_Strict):
    """Points for feature values in [lower, upper); None is unbounded. ``missing``
    marks the bin for subjects with no value. A categorical bin lists its
    ``values`` instead of bounds; in a feature with categorical bins, a value no
    bin lists (a category unseen in training) takes the ``missing`` bin."""

    lower: float | None = None
    upper: float | None = None
    values: list[float | str] | None = None
    missing: bool = False
    points: float

    @model_validator(mode="after")
    def _one_kind(self) -> ScorecardBin:
        if self.values is not None and (
            self.missing or self.lower is not None or self.upper is not None
        ):
            raise ValueError("a bin lists `values` or has bounds or is `missing`, not several")
        if self.values is not None and not self.values:
            raise ValueError("a categorical bin lists at least one value")
        return self


class Feature(_Strict):
    id: str = Field(pattern=_ID)
    dimension: Dimension
    aggregate: Literal["count", "sum", "max", "days_since_last", "age", "distinct"]
    types: list[str] = Field(default_factory=list)
    attribute: str | None = None
    when: str | None = None
    window_days: int | None = Field(default=None, gt=0)
    description: str = ""

    _cond = field_validator("when")(_check_condition)


class ScorecardFeature(_Strict):
    feature: str
    bins: list[ScorecardBin]


class Scorecard(_Strict):
    """A points scorecard: score = offset + sum of each feature's bin points."""

    offset: float
    features: list[ScorecardFeature]
    pdo: float | None = None
    trained_on: str = ""
    cv_auc: float | None = None
    holdout_auc: float | None = None


class Score(_Strict):
    base: float = 0
    min_score: float | None = None
    max_score: float | None = None
    range_illustrative: bool = False
    min_history: MinHistory | None = None
    consent_required: bool = False
    min_age: int | None = Field(default=None, ge=0)
    subject_kinds: list[SubjectKind] = Field(default_factory=_both_kinds)
    rules: list[ScoreRule] = Field(default_factory=list)
    features: list[Feature] = Field(default_factory=list)
    scorecard: Scorecard | None = None
    grades: list[GradeBand] = Field(default_factory=list)
    legal_basis: str = ""
    reasons: int = Field(default=4, ge=0, description="how many reason codes a score carries")

    @model_validator(mode="after")
    def _bands_descending(self) -> Score:
        mins = [b.min for b in self.grades]
        bounded = [m for m in mins if m is not None]
        if bounded != sorted(bounded, reverse=True):
            raise ValueError("grade bands must be ordered from the highest min to the lowest")
        if any(m is None for m in mins[:-1]):
            raise ValueError("only the last grade band may leave min out")
        ids = [r.id for r in self.rules] + [f.id for f in self.features]
        if len(ids) != len(set(ids)):
            raise ValueError("score rule and feature ids must be unique")
        if self.scorecard is not None:
            known = {f.id for f in self.features}
            for sf in self.scorecard.features:
                if sf.feature not in known:
                    raise ValueError(f"scorecard feature {sf.feature!r} is not in features")
        return self


class TermRule(_Strict):
    when: str | None = None
    years: int | None = Field(default=None, ge=0)
    days: int | None = Field(default=None, ge=0)
    open_ended: bool = False
    legal_basis: str = ""

    _cond = field_validator("when")(_check_condition)

    @model_validator(mode="after")
    def _term_or_open(self) -> TermRule:
        if self.open_ended == (self.years is not None or self.days is not None):
            raise ValueError("a term rule has either years/days or open_ended: true")
        return self


class Removal(_Strict):
    type: str
    match_key: bool = True
    applies_to: Literal["any", "open_ended", "termed"] = "any"
    when: str | None = None
    legal_basis: str = ""
    reason: str = ""

    _cond = field_validator("when")(_check_condition)


class Exclusion(_Strict):
    id: str = Field(pattern=_ID)
    when: str
    legal_basis: str = ""

    _cond = field_validator("when")(_check_condition)


class ListSpec(_Strict):
    id: str = Field(pattern=_ID)
    name: str
    kind: Literal["blacklist", "redlist"] = "blacklist"
    entry_type: str
    key: str | None = None
    when: str | None = None
    subject_kinds: list[SubjectKind] = Field(default_factory=_both_kinds)
    start_delay_days: int = Field(default=0, ge=0)
    start_delay_attribute: str | None = None
    terms: list[TermRule]
    extension_attribute: str | None = None
    curable: bool = False
    removal: list[Removal] = Field(default_factory=list)
    exclusions: list[Exclusion] = Field(default_factory=list)
    public_fields: list[str] = Field(default_factory=list)
    applies_from: date | None = None
    retroactive_basis: str = ""
    legal_basis: str = ""
    remedy: str = ""

    _cond = field_validator("when")(_check_condition)


class ConsequenceRule(_Strict):
    id: str = Field(pattern=_ID)
    list: str | None = None
    grades: builtins.list[str] | None = None
    service: str
    effect: Effect
    reaches: str = "subject"
    legal_basis: str = ""
    remedy: str = ""
    illustrative: bool = False

    @model_validator(mode="after")
    def _one_basis(self) -> ConsequenceRule:
        if (self.list is None) == (self.grades is None):
            raise ValueError("a consequence names either a list or grades")
        return self


class RetentionRule(_Strict):
    id: str = Field(pattern=_ID)
    types: list[str]
    years: int = Field(gt=0)
    start: Literal["occurred", "conduct_end"] = "occurred"
    ended_by: list[str] = Field(default_factory=list)
    key: str | None = None
    legal_basis: str = ""

    @model_validator(mode="after")
    def _conduct_end_needs_enders(self) -> RetentionRule:
        if self.start == "conduct_end" and (not self.ended_by or self.key is None):
            raise ValueError("start: conduct_end needs ended_by types and a key attribute")
        return self


class ReportSection(_Strict):
    id: str = Field(pattern=_ID)
    title: str
    types: list[str]
    legal_basis: str = ""


class Access(_Strict):
    """Who may read the system's report: inquiries need consent and a purpose."""

    consent_required: bool = True
    purposes: list[str] = Field(default_factory=list)
    legal_basis: str = ""


Ground = Literal[
    "should_not_be_listed", "inaccurate", "should_have_been_deleted", "not_mine", "other"
]


class Period(_Strict):
    """A due-process period: ``days`` counted in calendar days or working days
    (Civil Procedure Law Art. 85: the first day is not counted; a period whose last
    day is a holiday ends on the next working day; ``xinyong.calendar.due_date``)."""

    days: int = Field(gt=0)
    unit: Literal["days", "working_days"]
    legal_basis: str = ""
    illustrative: bool = False


class Repair(_Strict):
    """Credit repair (NDRC Order No. 36): the minimum publication period per value of
    ``attribute`` before a subject may apply, and the record types that show the
    obligation performed (matched on ``key``)."""

    attribute: str
    minimum_months: dict[str, int]
    performed_by: list[str]
    key: str
    decision: Period
    legal_basis: str = ""


class Process(_Strict):
    """The system's due process, as data: the objection grounds it accepts, the
    review period, the correction period once upheld, the reconsideration window and
    its decision period, whether a listing stays in force meanwhile, and credit repair."""

    grounds: list[Ground] = Field(min_length=1)
    review: Period
    correction: Period
    reconsideration_window: Period | None = None
    reconsideration_decision: Period | None = None
    listing_in_force: bool = True
    repair: Repair | None = None
    legal_basis: str
    illustrative: bool = False

    @model_validator(mode="after")
    def _both_or_neither(self) -> Process:
        if (self.reconsideration_window is None) != (self.reconsideration_decision is None):
            raise ValueError("reconsideration needs both its window and its decision period")
        return self


class Pack(_Strict):
    meta: Meta
    scope: Scope
    relations: list[RelationUse] = Field(default_factory=list)
    score: Score | None = None
    lists: list[ListSpec] = Field(default_factory=list)
    consequences: list[ConsequenceRule] = Field(default_factory=list)
    retention: list[RetentionRule] = Field(default_factory=list)
    report: list[ReportSection] = Field(default_factory=list)
    access: Access | None = None
    process: Process | None = None

    @property
    def system(self) -> str:
        return self.meta.system

    def applies_from(self, rule: ScoreRule | ListSpec) -> date:
        """The first day (Asia/Shanghai) whose records a rule counts: its own
        ``applies_from``, else the pack's effective date (no retroactive rules,
        Legislation Law Art. 104)."""
        return rule.applies_from or self.meta.effective_from

    @model_validator(mode="after")
    def _references(self) -> Pack:
        list_ids = [x.id for x in self.lists]
        if len(list_ids) != len(set(list_ids)):
            raise ValueError("list ids must be unique")
        cons_ids = [c.id for c in self.consequences]
        if len(cons_ids) != len(set(cons_ids)):
            raise ValueError("consequence ids must be unique")
        grades = {b.grade for b in self.score.grades} if self.score else set()
        relations = {r.id for r in self.relations}
        transferred = [r.id for r in self.relations if r.transferred_by is not None]
        if transferred and len({x.key for x in self.lists}) > 1:
            raise ValueError(
                f"relation {transferred[0]!r} is transferred by a record of the case: every"
                " list must then share one key (the case attribute the transfer names)"
            )
        for c in self.consequences:
            if c.list is not None and c.list not in list_ids:
                raise ValueError(f"consequence {c.id}: unknown list {c.list!r}")
            for g in c.grades or []:
                if g not in grades:
                    raise ValueError(f"consequence {c.id}: unknown grade {g!r}")
            if c.reaches != "subject" and c.reaches not in relations:
                raise ValueError(
                    f"consequence {c.id}: reaches {c.reaches!r}, which the pack does not declare"
                    " under relations"
                )
        return self
