"""The pack condition language: a small, safe expression language.

Conditions in packs are strings such as
    ground != 'able_but_refuses' and subject.age >= 18
    kind in ['loud_music', 'eating']
    between(days_past_due, 30, 89)
    ceil(days_past_due / 30)

They are parsed with Python's own parser (``ast``, mode 'eval') and only a
whitelist of node types is accepted; anything else (calls other than the listed
functions, attribute access other than ``subject.<field>``, subscripts, lambdas,
comprehensions ...) is refused with the position of the offending part. The
parsed tree is compiled either to Ibis expressions (the engine; never SQL text)
or evaluated in plain Python with SQL three-valued logic (the reference
evaluator used by the property tests), so both share one grammar.

Writing a parser by hand would duplicate what ``ast`` does correctly; the
whitelist is the part that needs to be ours.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from xinyong.lazy import lazy

if TYPE_CHECKING:
    import ibis
    import ibis.expr.types as ir
else:
    # Parsing a pack needs no Ibis: a check answered from a stored plan never loads it.
    ibis = lazy("ibis")

SUBJECT_FIELDS = ("age", "kind")
FUNCTIONS = ("between", "ceil", "floor", "abs", "min", "max")

_COMPARE = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn)
_ARITH = (ast.Add, ast.Sub, ast.Mult, ast.Div)


class ExpressionError(ValueError):
    """A condition that does not parse or uses something outside the language."""

    def __init__(self, text: str, message: str, node: ast.AST | None = None) -> None:
        where = (
            f" at column {node.col_offset + 1}"
            if node is not None and hasattr(node, "col_offset")
            else ""
        )
        super().__init__(f"in condition {text!r}{where}: {message}")
        self.text = text


@dataclass(frozen=True)
class Condition:
    """A parsed, validated condition."""

    text: str
    tree: ast.expr

    @property
    def names(self) -> frozenset[str]:
        """Attribute names and ``subject.<field>`` names the condition reads."""
        found: set[str] = set()
        functions = {id(n.func) for n in ast.walk(self.tree) if isinstance(n, ast.Call)}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                found.add(f"subject.{node.attr}")
            elif (
                isinstance(node, ast.Name)
                and id(node) not in functions
                and not _is_subject_base(self.tree, node)
            ):
                found.add(node.id)
        return frozenset(found)


def _is_subject_base(tree: ast.expr, name: ast.Name) -> bool:
    return any(isinstance(n, ast.Attribute) and n.value is name for n in ast.walk(tree))


@cache
def parse(text: str) -> Condition:
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError(str(text), "empty condition")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ExpressionError(text, f"syntax error: {exc.msg}") from None
    _validate(text, tree)
    return Condition(text, tree)


def _validate(text: str, node: ast.AST) -> None:
    if isinstance(node, ast.BoolOp):
        for v in node.values:
            _validate(text, v)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.Not | ast.USub):
            raise ExpressionError(text, "only 'not' and unary '-' are allowed", node)
        _validate(text, node.operand)
    elif isinstance(node, ast.Compare):
        for op in node.ops:
            if not isinstance(op, _COMPARE):
                raise ExpressionError(text, f"operator {type(op).__name__} is not allowed", node)
        for v in [node.left, *node.comparators]:
            _validate(text, v)
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn) and not isinstance(right, ast.List | ast.Tuple):
                raise ExpressionError(text, "'in' needs a literal list such as ['a', 'b']", node)
    elif isinstance(node, ast.BinOp):
        if not isinstance(node.op, _ARITH):
            raise ExpressionError(text, "only + - * / are allowed", node)
        _validate(text, node.left)
        _validate(text, node.right)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise ExpressionError(
                text, f"only the functions {', '.join(FUNCTIONS)} are allowed", node
            )
        if node.keywords:
            raise ExpressionError(text, "keyword arguments are not allowed", node)
        arity = {"between": 3, "ceil": 1, "floor": 1, "abs": 1}.get(node.func.id)
        if arity is not None and len(node.args) != arity:
            raise ExpressionError(text, f"{node.func.id}() takes {arity} arguments", node)
        if node.func.id in ("min", "max") and len(node.args) < 2:
            raise ExpressionError(text, f"{node.func.id}() takes 2 or more arguments", node)
        for a in node.args:
            _validate(text, a)
    elif isinstance(node, ast.Attribute):
        if not (isinstance(node.value, ast.Name) and node.value.id == "subject"):
            raise ExpressionError(text, "only subject.<field> may use a dot", node)
        if node.attr not in SUBJECT_FIELDS:
            raise ExpressionError(
                text,
                f"subject has no field {node.attr!r} (known: {', '.join(SUBJECT_FIELDS)})",
                node,
            )
    elif isinstance(node, ast.Name):
        if node.id in FUNCTIONS or node.id == "subject":
            raise ExpressionError(text, f"{node.id!r} cannot stand alone", node)
    elif isinstance(node, ast.List | ast.Tuple):
        for e in node.elts:
            if not isinstance(e, ast.Constant):
                raise ExpressionError(text, "lists may hold only literals", node)
            _validate(text, e)
    elif isinstance(node, ast.Constant):
        if not isinstance(node.value, str | int | float | bool) or node.value is None:
            raise ExpressionError(text, f"literal {node.value!r} is not allowed", node)
    else:
        raise ExpressionError(text, f"{type(node).__name__} is not allowed", node)


# ---------------------------------------------------------------------------
# Compilation to Ibis (the engine)

Resolver = Callable[[str], "ir.Value"]
"""Maps an attribute name or 'subject.age' / 'subject.kind' to an Ibis column."""


def to_ibis(cond: Condition, resolve: Resolver) -> ir.Value:
    return _ibis(cond.tree, resolve)


def _ibis(node: ast.AST, resolve: Resolver) -> Any:
    if isinstance(node, ast.BoolOp):
        parts = [_ibis(v, resolve) for v in node.values]
        out = parts[0]
        for p in parts[1:]:
            out = (out & p) if isinstance(node.op, ast.And) else (out | p)
        return out
    if isinstance(node, ast.UnaryOp):
        inner = _ibis(node.operand, resolve)
        return ~inner if isinstance(node.op, ast.Not) else -inner
    if isinstance(node, ast.Compare):
        left = _ibis(node.left, resolve)
        result = None
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                values = [e.value for e in right_node.elts]  # type: ignore[attr-defined]
                term = left.isin(values) if isinstance(op, ast.In) else left.notin(values)
                right = None
            else:
                right = _ibis(right_node, resolve)
                term = _IBIS_CMP[type(op)](left, right)
            result = term if result is None else (result & term)
            left = right
        return result
    if isinstance(node, ast.BinOp):
        left, right = _ibis(node.left, resolve), _ibis(node.right, resolve)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        return left / right
    if isinstance(node, ast.Call):
        name = node.func.id  # type: ignore[attr-defined]
        args = [_ibis(a, resolve) for a in node.args]
        if name == "between":
            return args[0].between(args[1], args[2])
        if name == "ceil":
            return _as_value(args[0]).ceil()
        if name == "floor":
            return _as_value(args[0]).floor()
        if name == "abs":
            return _as_value(args[0]).abs()
        fn = ibis.least if name == "min" else ibis.greatest
        return fn(*args)
    if isinstance(node, ast.Attribute):
        return resolve(f"subject.{node.attr}")
    if isinstance(node, ast.Name):
        return resolve(node.id)
    if isinstance(node, ast.Constant):
        return ibis.literal(node.value)
    raise TypeError(type(node).__name__)


def _as_value(x: Any) -> Any:
    return x if isinstance(x, ibis.expr.types.Value) else ibis.literal(x)


_IBIS_CMP: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
}


# ---------------------------------------------------------------------------
# Plain-Python evaluation (the reference evaluator), SQL three-valued logic:
# None is SQL NULL, and a condition that is NULL does not hold.


def evaluate(cond: Condition, env: Mapping[str, Any]) -> Any:
    return _py(cond.tree, env)


def holds(cond: Condition | None, env: Mapping[str, Any]) -> bool:
    return cond is None or _py(cond.tree, env) is True


def _py(node: ast.AST, env: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.BoolOp):
        vals = [_py(v, env) for v in node.values]
        if isinstance(node.op, ast.And):
            if any(v is False for v in vals):
                return False
            return None if any(v is None for v in vals) else True
        if any(v is True for v in vals):
            return True
        return None if any(v is None for v in vals) else False
    if isinstance(node, ast.UnaryOp):
        v = _py(node.operand, env)
        if v is None:
            return None
        return (not v) if isinstance(node.op, ast.Not) else -v
    if isinstance(node, ast.Compare):
        left = _py(node.left, env)
        results: list[Any] = []
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                values = [e.value for e in right_node.elts]  # type: ignore[attr-defined]
                r = None if left is None else ((left in values) == isinstance(op, ast.In))
                right = None
            else:
                right = _py(right_node, env)
                r = None if left is None or right is None else _PY_CMP[type(op)](left, right)
            results.append(r)
            left = right
        if any(r is False for r in results):
            return False
        return None if any(r is None for r in results) else True
    if isinstance(node, ast.BinOp):
        a, b = _py(node.left, env), _py(node.right, env)
        if a is None or b is None:
            return None
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        return None if b == 0 else a / b
    if isinstance(node, ast.Call):
        name = node.func.id  # type: ignore[attr-defined]
        args = [_py(a, env) for a in node.args]
        if name == "between":
            if any(a is None for a in args):
                return None
            return args[1] <= args[0] <= args[2]
        if any(a is None for a in args):
            return None
        if name == "ceil":
            return math.ceil(args[0])
        if name == "floor":
            return math.floor(args[0])
        if name == "abs":
            return abs(args[0])
        return min(args) if name == "min" else max(args)
    if isinstance(node, ast.Attribute):
        return env.get(f"subject.{node.attr}")
    if isinstance(node, ast.Name):
        return env.get(node.id)
    if isinstance(node, ast.Constant):
        return node.value
    raise TypeError(type(node).__name__)


_PY_CMP: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
}
