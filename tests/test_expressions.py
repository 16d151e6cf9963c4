"""The pack condition language: what it accepts, what it refuses, and that its
plain-Python reading follows SQL's three-valued logic (as the engine's does)."""

from __future__ import annotations

import pytest

from xinyong.packs.expressions import ExpressionError, evaluate, holds, parse


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",
        "ground.__class__",
        "attributes['case_no']",
        "(lambda: 1)()",
        "[x for x in y]",
        "open('f')",
        "ground in some_list",
        "subject.religion == 'x'",
        "subject",
        "",
        "ground ==",
        "2 ** 10",
    ],
)
def test_refuses_anything_outside_the_language(text: str) -> None:
    with pytest.raises(ExpressionError) as err:
        parse(text)
    assert "in condition" in str(err.value)


def test_names_are_the_attributes_and_subject_fields_read() -> None:
    assert parse("ceil(days_past_due / 30)").names == {"days_past_due"}
    cond = parse("ground != 'able_but_refuses' and subject.age >= 18 and kind in ['a', 'b']")
    assert cond.names == {"ground", "subject.age", "kind"}


def test_evaluation_follows_sql_null_semantics() -> None:
    adult = parse("subject.age >= 18")
    assert holds(adult, {"subject.age": 30})
    assert not holds(adult, {"subject.age": 12})
    # an organization has no age: the comparison is NULL, so the condition does not hold
    assert evaluate(adult, {"subject.age": None}) is None
    assert not holds(adult, {})
    assert holds(parse("not (subject.age < 18) or ground == 'x'"), {"ground": "x"})
    assert evaluate(parse("between(days, 30, 89)"), {"days": 89}) is True
    assert evaluate(parse("ceil(days_past_due / 30)"), {"days_past_due": 31}) == 2
    assert holds(None, {})  # no condition: always holds
