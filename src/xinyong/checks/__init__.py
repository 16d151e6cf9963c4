"""Checks (may S use V at T?), scores and explanations."""

from xinyong.checks.answers import CheckAnswer, Reason, ScoreAnswer
from xinyong.checks.index import ConsequenceIndex
from xinyong.checks.questions import Explanation, UnknownName, check, explain, score_of

__all__ = [
    "CheckAnswer",
    "ConsequenceIndex",
    "Explanation",
    "Reason",
    "ScoreAnswer",
    "UnknownName",
    "check",
    "explain",
    "score_of",
]
