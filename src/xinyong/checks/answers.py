"""The answers a service provider or subject receives (pydantic at the edge)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Reason(BaseModel):
    """Why a check is not a plain allow: one active consequence."""

    model_config = ConfigDict(populate_by_name=True)

    system: str
    list: str | None = None
    grade: str | None = None
    rule: str
    effect: str
    legal_basis: str
    since: str
    until: str | None
    remedy: str | None = None
    via: dict[str, str] | None = Field(
        default=None, description="the legal-role relation the consequence reached along"
    )
    disputed: bool | None = Field(
        default=None, description="a pending objection contests a record it rests on"
    )
    objection_id: str | None = None
    human_review: bool | None = Field(
        default=None, description="the automated decision is under a person's review"
    )

    def public(self) -> dict[str, Any]:
        """The JSON shape of the CLI contract: `list` or `grade`, not both."""
        out = self.model_dump()
        if out["list"] is None:
            del out["list"]
        if out["grade"] is None:
            del out["grade"]
        for key in ("via", "disputed", "objection_id", "human_review"):
            if out[key] is None:
                del out[key]
        return out


class CheckAnswer(BaseModel):
    subject_id: str
    service: str
    at: str
    decision: str
    reasons: list[Reason] = Field(default_factory=list)
    answered_from: str = Field(
        default="index", description="'index' (materialized) or 'replay' (evaluated for this check)"
    )

    def public(self) -> dict[str, Any]:
        return {
            "subject_id": self.subject_id,
            "service": self.service,
            "at": self.at,
            "decision": self.decision,
            "reasons": [r.public() for r in self.reasons],
        }


class ScoreAnswer(BaseModel):
    subject_id: str
    system: str
    score: float | None
    grade: str | None

    def public(self) -> dict[str, Any]:
        score = self.score
        if score is not None and float(score).is_integer():
            return {**self.model_dump(), "score": int(score)}
        return self.model_dump()
