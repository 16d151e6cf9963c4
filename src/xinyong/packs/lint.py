"""The pack linter: the safeguards of DESIGN.md, checked on every pack.

``lint(pack)`` returns every finding at once (so that a regulator sees all
objections, not the first), each naming the pack element (its id, or a path
such as ``lists.dishonest_debtors.terms[0]``) and the reason.

Errors (``install_pack`` refuses a pack with any):
- special-category data: any record type, attribute, feature, list, relation or
  rule id or condition name that mentions ethnicity or race, religion, political
  opinion, union membership, health, genetics, biometrics, sex life or
  orientation, and also speech, politics, association and social connections,
  which the project declines (DESIGN.md, "What the project declines");
- family ties: any relation or id suggesting them (spouse, child, parent,
  relative, family, household, ...), whatever its legal basis;
- consequences that reach anyone but the subject, except along a relation the
  pack declares with a legal basis and the catalog defines;
- references to record types, attributes, services, source kinds, relations or
  inquiry purposes that are not in the catalog; condition names that are not
  attributes of the record type (or ``subject.age`` / ``subject.kind``);
- record types used by rules but outside the pack's scope; a scope without the
  consent types when consent is required, or without a declared relation's
  record type;
- a list without a maximum term, unless it is curable by the subject and has a
  removal;
- a home address or phone among a list's public fields (SPC Art. 6);
- a list that can take persons without an exclusion of minors
  (``subject.age < 18``), and a detrimental grade consequence on persons
  without ``min_age`` of at least 18: minors are never listed;
- a missing or empty legal basis on the pack meta and on every rule, list,
  term, removal, exclusion, consequence, relation and retention rule.

Warnings:
- a detrimental consequence (``effect: deny``) on a service whose domain is
  unrelated to the domain of a record type that can cause it (EU AI Act
  Art. 5(1)(c)(i));
- illustrative values (unconfirmed in the sources) used in a consequence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Literal

from xinyong.catalog import Catalog, load_catalog
from xinyong.packs.expressions import FUNCTIONS, ExpressionError, holds, parse
from xinyong.packs.schema import ListSpec, Pack

Level = Literal["error", "warning"]

SUBJECT_NAMES = frozenset({"subject.age", "subject.kind"})
CONSENT_TYPES = ("subject.consent_granted", "subject.consent_withdrawn")
INQUIRY_TYPE = "inquiry.made"
ADULT_AGE = 18
_PRIVATE_FIELD = re.compile(r"address|domicile|residence|phone|mobile|telephone|住址|电话|手机")
AI_ACT = "EU AI Act Art. 5(1)(c)(i)"


@dataclass(frozen=True)
class Finding:
    level: Level
    rule_id: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.rule_id}: {self.message}"


# ---------------------------------------------------------------------------
# Vocabulary of what the linter refuses. Names are split into lower-case tokens
# (on anything but letters and digits); a token matching one of these patterns
# marks the name. A few unambiguous stems also match inside run-together words.

_SPECIAL: tuple[tuple[str, str], ...] = (
    (r"ethnic\w*|races?|racial\w*", "ethnicity or race"),
    (r"religio\w*|faith\w*|belief\w*|church\w*|mosque\w*|temple\w*|worship\w*", "religion"),
    (r"politic\w*|opinions?|dissent\w*|protest\w*|petition\w*", "politics"),
    (r"unions?|unioni[sz]\w*", "union membership"),
    (
        r"health\w*|medical\w*|medicine|disease\w*|illness\w*|diagnos\w*|disabilit\w*"
        r"|patient\w*|mental\w*|hiv|pregnan\w*",
        "health",
    ),
    (r"genetic\w*|genes?|genom\w*|dna", "genetics"),
    (
        r"biometric\w*|face|faces|facial\w*|fingerprint\w*|iris|voiceprint\w*|gait"
        r"|camera\w*|surveillance",
        "biometrics",
    ),
    (r"sex|sexual\w*|orientation\w*|lgbt\w*|gay|lesbian", "sex life or sexual orientation"),
    (r"speech\w*|weibo|wechat|tweets?", "speech"),
    (
        r"associat\w*|social\w*|connections?|contacts?|friends?\w*|followers?|network\w*",
        "association or social connections",
    ),
)
_SPECIAL_STEMS: tuple[tuple[str, str], ...] = (
    ("ethnic", "ethnicity or race"),
    ("religio", "religion"),
    ("politic", "politics"),
    ("biometric", "biometrics"),
    ("fingerprint", "biometrics"),
    ("genetic", "genetics"),
    ("sexual", "sex life or sexual orientation"),
    ("facial", "biometrics"),
    ("blood_type", "genetics"),
    ("social_connection", "association or social connections"),
)
_SPECIAL_RE = [(re.compile(rf"^(?:{p})$"), why) for p, why in _SPECIAL]

_FAMILY = re.compile(
    r"^(?:spouses?|spousal|wife|wives|husbands?|married|marriage|marital|partner_of"
    r"|child|children|childs|kids?|sons?|daughters?|offspring|minor_child\w*"
    r"|parents?|parental|father\w*|mother\w*|grand\w+|siblings?|brothers?|sisters?"
    r"|relatives?|kin|kinship|family|families|familial|household\w*|dependants?"
    r"|dependents?|guardian\w*|in_laws?|cousins?|uncles?|aunts?|nephews?|nieces?)$"
)
_FAMILY_STEMS = ("spouse", "family", "household", "relative", "children", "sibling")


def _tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", name.lower()) if t]


def special_category(name: str) -> str | None:
    """The special category (or declined subject) a name mentions, if any."""
    low = name.lower()
    for tok in _tokens(low):
        for pattern, why in _SPECIAL_RE:
            if pattern.match(tok):
                return why
    for stem, why in _SPECIAL_STEMS:
        if stem in low:
            return why
    return None


def family_tie(name: str) -> bool:
    """Whether a name suggests a family tie."""
    low = name.lower()
    return any(_FAMILY.match(t) for t in _tokens(low)) or any(s in low for s in _FAMILY_STEMS)


# ---------------------------------------------------------------------------


class _Linter:
    def __init__(self, pack: Pack, catalog: Catalog) -> None:
        self.pack = pack
        self.cat = catalog
        self.findings: list[Finding] = []
        self.scope = set(pack.scope.record_types)

    def error(self, where: str, message: str) -> None:
        self.findings.append(Finding("error", where, message))

    def warn(self, where: str, message: str) -> None:
        self.findings.append(Finding("warning", where, message))

    # -- names -------------------------------------------------------------

    def name(self, where: str, what: str, name: str | None) -> None:
        """Screen one name for special categories and family ties."""
        if not name:
            return
        why = special_category(name)
        if why is not None:
            self.error(
                where,
                f"{what} {name!r} concerns {why}: rules on special-category data (or on"
                " speech, politics, association or social connections) are refused",
            )
        if family_tie(name):
            self.error(
                where,
                f"{what} {name!r} suggests a family tie: consequences never reach family"
                " members, whatever the legal basis",
            )

    def basis(self, where: str, text: str | None) -> None:
        if not text or not text.strip():
            self.error(where, "no legal basis: every rule must cite the provision it applies")

    # -- record types, attributes, conditions --------------------------------

    def rtype(self, where: str, type_name: str, *, in_scope: bool = True) -> bool:
        """Check a referenced record type; True when the catalog knows it."""
        self.name(where, "record type", type_name)
        if type_name not in self.cat.types:
            self.error(where, f"record type {type_name!r} is not in the catalog")
            return False
        if in_scope and type_name not in self.scope:
            self.error(
                where,
                f"record type {type_name!r} is outside the pack's scope: a system sees only"
                " the record types its scope names",
            )
        return True

    def attribute(self, where: str, types: Iterable[str], attr: str | None, what: str) -> None:
        if attr is None:
            return
        self.name(where, what, attr)
        for t in types:
            rt = self.cat.types.get(t)
            if rt is not None and attr not in rt.attributes:
                self.error(where, f"{what} {attr!r} is not an attribute of {t!r}")

    def condition(self, where: str, types: Iterable[str], text: str | None) -> None:
        if text is None:
            return
        try:
            cond = parse(text)
        except ExpressionError as exc:  # the schema already parses; kept for direct use
            self.error(where, str(exc))
            return
        types = list(types)
        for n in sorted(cond.names - set(FUNCTIONS)):  # call names are not data
            self.name(where, "condition name", n)
            if n in SUBJECT_NAMES:
                continue
            for t in types:
                rt = self.cat.types.get(t)
                if rt is not None and n not in rt.attributes:
                    known = ", ".join([*rt.attributes, *sorted(SUBJECT_NAMES)])
                    self.error(
                        where,
                        f"condition {text!r} reads {n!r}, which is not an attribute of {t!r}"
                        f" (known: {known})",
                    )

    # -- the checks ----------------------------------------------------------

    def run(self) -> list[Finding]:
        self.meta()
        self.scope_check()
        self.relations()
        self.score()
        for spec in self.pack.lists:
            self.list_spec(spec)
        self.consequences()
        self.retention()
        self.report_and_access()
        self.due_process()
        return self.findings

    def due_process(self) -> None:
        """A system that lists or grades must say how a subject contests it (SPC
        Arts. 11-12, PBoC Art. 25, GDPR Art. 22): its ``process:`` section."""
        process = self.pack.process
        grades = bool(self.pack.score and self.pack.score.grades)
        if process is None:
            if self.pack.lists or grades:
                what = "lists" if self.pack.lists else "grades"
                self.error(
                    "process",
                    f"the pack has {what} but no objection process: add a `process:` section"
                    " with the grounds, review and correction periods and their legal basis",
                )
            return
        self.basis("process", process.legal_basis)
        if process.repair is not None:
            for t in process.repair.performed_by:
                self.rtype(f"process.repair.performed_by.{t}", t, in_scope=False)

    def meta(self) -> None:
        self.basis("meta", self.pack.meta.legal_basis)
        self.name("meta", "system", self.pack.meta.system)

    def scope_check(self) -> None:
        for t in self.pack.scope.record_types:
            self.rtype(f"scope.record_types.{t}", t, in_scope=False)
        for k in self.pack.scope.source_kinds:
            if k not in self.cat.source_kinds:
                self.error(f"scope.source_kinds.{k}", f"source kind {k!r} is not in the catalog")
        score = self.pack.score
        if score is not None and score.consent_required:
            for t in CONSENT_TYPES:
                if t not in self.scope:
                    self.error(
                        "scope",
                        f"consent is required but the scope omits {t!r}, so consent could"
                        " never be seen",
                    )

    def relations(self) -> None:
        for rel in self.pack.relations:
            where = f"relations.{rel.id}"
            self.name(where, "relation", rel.id)
            self.basis(where, rel.legal_basis)
            if rel.transferred_by is not None:
                self.basis(where, rel.transfer_basis)
                if self.rtype(where, rel.transferred_by):
                    self.attribute(where, [rel.transferred_by], "person_id", "transfer attribute")
            spec = self.cat.relations.get(rel.id)
            if spec is None:
                self.error(
                    where,
                    f"relation {rel.id!r} is not a legal-role relation defined in the catalog",
                )
                continue
            if spec.record_type not in self.scope:
                self.error(
                    where,
                    f"relation {rel.id!r} is read from {spec.record_type!r}, which the scope omits",
                )

    def score(self) -> None:
        score = self.pack.score
        if score is None:
            return
        for rule in score.rules:
            where = rule.id
            self.name(where, "score rule", rule.id)
            self.basis(where, rule.legal_basis)
            if self.rtype(where, rule.type):
                self.condition(where, [rule.type], rule.when)
                self.condition(where, [rule.type], rule.multiplier)
            self.reach_back(where, rule.applies_from, rule.retroactive_basis, rule.points < 0)
            if rule.episode is not None:
                for t in rule.episode.ended_by:
                    if self.rtype(where, t):
                        self.attribute(where, [t], rule.episode.key, "episode key")
                self.attribute(where, [rule.type], rule.episode.key, "episode key")
        if score.rules and score.min_score is None:
            self.warn(
                "score",
                "a points system without min_score has no floor to clamp to: enough"
                " deductions give a score below any grade's meaning",
            )
        if score.min_history is not None:
            for t in score.min_history.types:
                self.rtype("score.min_history", t)
        for feat in score.features:
            where = feat.id
            self.name(where, "feature", feat.id)
            known = [t for t in feat.types if self.rtype(where, t)]
            self.attribute(where, known, feat.attribute, "feature attribute")
            self.condition(where, known, feat.when)

    def reach_back(
        self, where: str, applies_from: date | None, basis: str, detrimental: bool
    ) -> None:
        """Legislation Law Art. 104: no retroactivity, except provisions made to better
        protect citizens and organizations."""
        effective = self.pack.meta.effective_from
        if applies_from is None or applies_from >= effective:
            return
        if detrimental:
            self.error(
                where,
                f"applies_from {applies_from} reaches back before the pack's effective date"
                f" {effective}: a detrimental rule never applies retroactively (PRC"
                " Legislation Law, Art. 104)",
            )
        elif not basis.strip():
            self.error(
                where,
                f"applies_from {applies_from} reaches back before the pack's effective date"
                f" {effective}: a favourable rule may, but must cite its basis"
                " (retroactive_basis; PRC Legislation Law, Art. 104)",
            )

    def list_spec(self, spec: ListSpec) -> None:
        where = f"lists.{spec.id}"
        self.name(where, "list", spec.id)
        self.basis(where, spec.legal_basis)
        self.reach_back(where, spec.applies_from, spec.retroactive_basis, spec.kind == "blacklist")
        entry = [spec.entry_type] if self.rtype(where, spec.entry_type) else []
        self.attribute(where, entry, spec.key, "key")
        self.attribute(where, entry, spec.start_delay_attribute, "start_delay_attribute")
        self.attribute(where, entry, spec.extension_attribute, "extension_attribute")
        self.condition(where, entry, spec.when)
        for f in spec.public_fields:
            self.name(where, "public field", f)
            if _PRIVATE_FIELD.search(f):
                # SPC Art. 6 publishes no private information: a home address or
                # phone never reaches a public list.
                self.error(
                    where,
                    f"public field {f!r} is private information (home address or phone);"
                    " Fa Shi [2017] No. 7, Art. 6 publishes no private information",
                )
        for i, term in enumerate(spec.terms):
            tw = f"{where}.terms[{i}]"
            self.basis(tw, term.legal_basis)
            self.condition(tw, entry, term.when)
        for i, rem in enumerate(spec.removal):
            rw = f"{where}.removal[{i}]"
            self.basis(rw, rem.legal_basis)
            if self.rtype(rw, rem.type):
                self.condition(rw, [rem.type], rem.when)
                if rem.match_key and spec.key is not None:
                    self.attribute(rw, [rem.type], spec.key, "key")
        for exc in spec.exclusions:
            ew = f"{where}.exclusions.{exc.id}"
            self.name(ew, "exclusion", exc.id)
            self.basis(ew, exc.legal_basis)
            self.condition(ew, entry, exc.when)

        unbounded = not spec.terms or any(t.open_ended for t in spec.terms)
        if unbounded and not (spec.curable and spec.removal):
            self.error(
                where,
                "the list has no maximum term (an open-ended term) but is not curable by"
                " the subject: mark it curable: true and name at least one removal"
                " record, or give every term years or days",
            )
        if "person" in spec.subject_kinds and not any(
            _excludes_minors(e.when) for e in spec.exclusions
        ):
            self.error(
                where,
                "Minors are never listed: a list that can take persons needs an exclusion"
                " on subject.age < 18 (e.g. Fa Shi [2017] No. 7, Art. 4)",
            )

    def consequences(self) -> None:
        pack = self.pack
        declared = {r.id: r for r in pack.relations}
        lists = {x.id: x for x in pack.lists}
        score = pack.score
        bands = {b.grade: b for b in score.grades} if score else {}
        for c in pack.consequences:
            where = c.id
            self.name(where, "consequence", c.id)
            self.basis(where, c.legal_basis)
            if c.service not in self.cat.services:
                self.error(where, f"service {c.service!r} is not in the catalog")
            # who it reaches
            if c.reaches != "subject":
                self.name(where, "relation", c.reaches)
                rel = declared.get(c.reaches)
                if rel is None:
                    self.error(
                        where,
                        f"reaches {c.reaches!r}, which the pack does not declare: consequences"
                        " reach only the subject or a declared legal-role relation",
                    )
                elif not rel.legal_basis.strip():
                    self.error(
                        where,
                        f"reaches {c.reaches!r}, declared without a legal basis",
                    )
                if c.reaches not in self.cat.relations:
                    self.error(
                        where,
                        f"reaches {c.reaches!r}, which is not a legal-role relation defined in"
                        " the catalog",
                    )
            # what causes it
            causes: list[str] = []
            illustrative: list[str] = []
            if c.list is not None and c.list in lists:
                causes = [lists[c.list].entry_type]
            elif c.grades is not None and score is not None:
                # Records that can lower the score (a positive flat rule cannot).
                causes = [r.type for r in score.rules if r.points < 0 or r.multiplier]
                causes += [t for f in score.features for t in f.types]
                illustrative += [
                    f"grade band {g}" for g in c.grades if g in bands and bands[g].illustrative
                ]
                if any(r.illustrative for r in score.rules):
                    illustrative.append("illustrative score rules")
                if (
                    c.effect == "deny"
                    and "person" in score.subject_kinds
                    and (score.min_age is None or score.min_age < ADULT_AGE)
                ):
                    self.error(
                        where,
                        "Minors are never listed: a detrimental grade consequence needs"
                        f" score.min_age of at least {ADULT_AGE} when persons are scored",
                    )
            if c.illustrative:
                illustrative.insert(0, "the consequence itself")
            if illustrative:
                self.warn(
                    where,
                    "uses illustrative values (not confirmed in the sources): "
                    + ", ".join(illustrative),
                )
            if c.effect == "deny" and c.service in self.cat.services:
                unrelated = sorted(
                    {
                        f"{t} ({self.cat.types[t].domain})"
                        for t in causes
                        if t in self.cat.types
                        and not self.cat.is_related(self.cat.types[t].domain, c.service)
                    }
                )
                if unrelated:
                    sdomain = self.cat.services[c.service].domain
                    self.warn(
                        where,
                        f"denies {c.service!r} (domain {sdomain}) on records from unrelated"
                        f" domains: {', '.join(unrelated)}; detrimental treatment in a context"
                        f" unrelated to where the data came from ({AI_ACT})",
                    )

    def retention(self) -> None:
        for r in self.pack.retention:
            where = f"retention.{r.id}"
            self.name(where, "retention rule", r.id)
            self.basis(where, r.legal_basis)
            known = [t for t in r.types if self.rtype(where, t)]
            enders = [t for t in r.ended_by if self.rtype(where, t)]
            self.attribute(where, [*known, *enders], r.key, "key")

    def report_and_access(self) -> None:
        for sec in self.pack.report:
            where = f"report.{sec.id}"
            self.name(where, "report section", sec.id)
            for t in sec.types:
                self.rtype(where, t)
        access = self.pack.access
        if access is not None:
            self.basis("access", access.legal_basis)
            spec = self.cat.types.get(INQUIRY_TYPE)
            purpose = spec.attributes.get("purpose") if spec else None
            allowed = set(purpose.values or ()) if purpose else set()
            for p in access.purposes:
                if p not in allowed:
                    self.error(
                        f"access.purposes.{p}",
                        f"purpose {p!r} is not an inquiry purpose in the catalog"
                        f" ({', '.join(sorted(allowed))})",
                    )
                self.name("access", "purpose", p)


def _excludes_minors(text: str) -> bool:
    """Whether an exclusion condition holds for every age under 18, whatever
    else is known (other names are unknown: NULL)."""
    try:
        cond = parse(text)
    except ExpressionError:
        return False
    return all(
        holds(cond, {"subject.age": age, "subject.kind": "person"}) for age in range(ADULT_AGE)
    )


def _dedupe(findings: Iterable[Finding]) -> Iterator[Finding]:
    seen: set[Finding] = set()
    for f in findings:
        if f not in seen:
            seen.add(f)
            yield f


def lint(pack: Pack, catalog: Catalog | None = None) -> list[Finding]:
    """Every finding on ``pack``: errors first, then warnings, in pack order."""
    found = list(_dedupe(_Linter(pack, catalog or load_catalog()).run()))
    return [f for f in found if f.level == "error"] + [f for f in found if f.level == "warning"]
