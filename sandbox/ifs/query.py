"""A small OData v4 `$filter` compiler plus `$select`, `$orderby` and `$expand` parsing.

Types are checked the way IFS's OData provider (Apache Olingo) does: comparing an enum
property with a plain string, or a string with a number, is a 400, so a client that forgets
the `IfsApp.X.YState'Posted'` form fails here exactly as it would against a real tenant.
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Callable

from .errors import ODataError, bad_request
from .schema import DATE, DECIMAL, ENUMS, INT, STRING, EntityDef

Pred = Callable[[dict[str, Any]], Any]

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<enum>[A-Za-z_][\w.]*'(?:[^']|'')*')
  | (?P<str>'(?:[^']|'')*')
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\d:T]))
  | (?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMdD]?)
  | (?P<name>[A-Za-z_$][\w.]*)
  | (?P<punct>[(),])
""", re.X)

_COMPARE = {"eq", "ne", "gt", "ge", "lt", "le"}
_STRING_FUNCS = {"contains": 2, "startswith": 2, "endswith": 2, "tolower": 1, "toupper": 1}


def _error(message: str) -> ODataError:
    return bad_request(message, "ODP_INVALID_QUERY")


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise _error(f"Syntax error in $filter at position {pos}: {text[pos:pos + 20]!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            tokens.append((m.lastgroup or "", m.group()))
    return tokens


def _kind(edm: str) -> str:
    """Comparison family of a type."""
    if edm in (INT, DECIMAL):
        return "number"
    return edm


class _Parser:
    def __init__(self, edef: EntityDef, text: str) -> None:
        self.edef, self.tokens, self.i = edef, _tokenize(text), 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "")

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok[0] == "end" or (value is not None and tok[1] != value):
            raise _error(f"Syntax error in $filter: expected {value or 'more'}, got "
                         f"{tok[1] or 'end of expression'!r}.")
        self.i += 1
        return tok

    def parse(self) -> Pred:
        fn, typ = self.or_expr()
        if self.peek()[0] != "end":
            raise _error(f"Syntax error in $filter near {self.peek()[1]!r}.")
        if typ != "bool":
            raise _error("$filter must be a boolean expression.")
        return fn

    def _bool(self, part: tuple[Pred, str]) -> Pred:
        if part[1] != "bool":
            raise _error("and/or/not need boolean operands.")
        return part[0]

    def or_expr(self) -> tuple[Pred, str]:
        left = self.and_expr()
        while self.peek() == ("name", "or"):
            self.take()
            a, b = self._bool(left), self._bool(self.and_expr())
            left = ((lambda r, a=a, b=b: bool(a(r)) or bool(b(r))), "bool")
        return left

    def and_expr(self) -> tuple[Pred, str]:
        left = self.unary()
        while self.peek() == ("name", "and"):
            self.take()
            a, b = self._bool(left), self._bool(self.unary())
            left = ((lambda r, a=a, b=b: bool(a(r)) and bool(b(r))), "bool")
        return left

    def unary(self) -> tuple[Pred, str]:
        if self.peek() == ("name", "not"):
            self.take()
            inner = self._bool(self.unary())
            return (lambda r: not inner(r)), "bool"
        return self.comparison()

    def comparison(self) -> tuple[Pred, str]:
        left = self.operand()
        if self.peek()[0] == "name" and self.peek()[1] in _COMPARE:
            op = self.take()[1]
            right = self.operand()
            _check_types(left[1], right[1], op)
            return _compare(op, left[0], right[0]), "bool"
        return left

    def operand(self) -> tuple[Pred, str]:
        kind, text = self.take()
        if text == "(":
            inner = self.or_expr()
            self.take(")")
            return inner
        if kind == "str":
            value = text[1:-1].replace("''", "'")
            return (lambda r: value), STRING
        if kind == "date":
            return (lambda r: text), DATE
        if kind == "num":
            raw = text.rstrip("mMdD")
            num: Any = int(raw) if re.fullmatch(r"-?\d+", raw) else Decimal(raw)
            return (lambda r: num), INT
        if kind == "enum":
            return self._enum(text)
        if kind != "name":
            raise _error(f"Syntax error in $filter near {text!r}.")
        if text in ("true", "false"):
            flag = text == "true"
            return (lambda r: flag), "bool"
        if text == "null":
            return (lambda r: None), "null"
        if text in _STRING_FUNCS and self.peek()[1] == "(":
            return self._function(text)
        edm = self.edef.edm_type(text)
        if edm is None:
            raise _error(f"Could not find a property named '{text}' on type "
                         f"'IfsApp.{self.edef.projection}.{self.edef.type_name}'.")
        return (lambda r: r.get(text)), edm

    def _enum(self, text: str) -> tuple[Pred, str]:
        qualified, _, rest = text.partition("'")
        member = rest[:-1].replace("''", "'")
        enum = ENUMS.get(qualified)
        if enum is None:
            raise _error(f"Unknown enumeration type {qualified}.")
        if member not in enum.members:
            raise _error(f"'{member}' is not a member of {qualified}.")
        return (lambda r: member), qualified

    def _function(self, name: str) -> tuple[Pred, str]:
        self.take("(")
        args = [self.or_expr()]
        while self.peek()[1] == ",":
            self.take()
            args.append(self.or_expr())
        self.take(")")
        if len(args) != _STRING_FUNCS[name]:
            raise _error(f"{name} takes {_STRING_FUNCS[name]} argument(s).")
        for _, typ in args:
            if typ not in (STRING, "null"):
                raise _error(f"{name} needs string arguments, got {typ}.")
        f = [a[0] for a in args]
        if name == "tolower":
            return (lambda r: None if f[0](r) is None else f[0](r).lower()), STRING
        if name == "toupper":
            return (lambda r: None if f[0](r) is None else f[0](r).upper()), STRING
        test = {"contains": lambda a, b: b in a, "startswith": lambda a, b: a.startswith(b),
                "endswith": lambda a, b: a.endswith(b)}[name]

        def call(r: dict[str, Any]) -> bool:
            a, b = f[0](r), f[1](r)
            return a is not None and b is not None and test(a, b)
        return call, "bool"


def _check_types(left: str, right: str, op: str) -> None:
    if "null" in (left, right):
        if op not in ("eq", "ne"):
            raise _error(f"null can only be compared with eq or ne, not {op}.")
        return
    if _kind(left) != _kind(right):
        raise _error(f"The types '{left}' and '{right}' are not compatible.")


def _compare(op: str, a: Pred, b: Pred) -> Pred:
    if op == "eq":
        return lambda r: a(r) == b(r)
    if op == "ne":
        return lambda r: a(r) != b(r)
    cmp = {"gt": lambda x, y: x > y, "ge": lambda x, y: x >= y,
           "lt": lambda x, y: x < y, "le": lambda x, y: x <= y}[op]

    def run(r: dict[str, Any]) -> bool:
        x, y = a(r), b(r)
        return x is not None and y is not None and cmp(x, y)
    return run


def compile_filter(edef: EntityDef, text: str) -> Pred:
    return _Parser(edef, text).parse()


def _known(edef: EntityDef, name: str) -> str:
    if edef.edm_type(name) is None:
        raise _error(f"Could not find a property named '{name}' on type "
                     f"'IfsApp.{edef.projection}.{edef.type_name}'.")
    return name


def parse_select(edef: EntityDef, text: str) -> list[str]:
    return [_known(edef, s.strip()) for s in text.split(",") if s.strip()]


def parse_orderby(edef: EntityDef, text: str) -> list[tuple[str, bool]]:
    """[(property, descending)]."""
    out = []
    for item in text.split(","):
        words = item.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise _error(f"Invalid $orderby item {item.strip()!r}.")
        out.append((_known(edef, words[0]), len(words) == 2 and words[1] == "desc"))
    return out


def apply_orderby(rows: list[dict[str, Any]], order: list[tuple[str, bool]]) -> list:
    # Stable sorts from the last key to the first; null sorts first (ascending).
    for prop, desc in reversed(order):
        rows = sorted(rows, key=lambda r, p=prop: (r.get(p) is not None, r.get(p)),
                      reverse=desc)
    return rows


def parse_expand(edef: EntityDef, text: str) -> list[str]:
    names = [re.sub(r"\(.*\)$", "", n.strip()) for n in _split_top(text)]
    for name in names:
        if name in edef.children:
            raise ODataError(501, "ODP_NOT_IMPLEMENTED",
                             f"$expand of the collection-valued navigation '{name}' is not "
                             "supported; read it as a separate request.")
        if name not in edef.to_one:
            raise _error(f"'{name}' is not a navigation property of {edef.type_name}.")
    return names


def _split_top(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [s for s in out + [cur] if s.strip()]
