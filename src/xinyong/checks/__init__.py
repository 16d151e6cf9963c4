"""Checks (may S use V at T?), scores and explanations.

The names below are loaded on first use (PEP 562): ``xinyong.checks.snapshot``,
the fast path, must not import the engine that ``questions`` needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xinyong.checks.answers import CheckAnswer, Reason, ScoreAnswer
    from xinyong.checks.index import ConsequenceIndex
    from xinyong.checks.questions import Explanation, UnknownName, check, explain, score_of

_WHERE = {
    "CheckAnswer": "answers",
    "Reason": "answers",
    "ScoreAnswer": "answers",
    "ConsequenceIndex": "index",
    "Explanation": "questions",
    "UnknownName": "questions",
    "check": "questions",
    "explain": "questions",
    "score_of": "questions",
}

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


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
