"""QBO's query language: parse a statement, then filter and order records (docs/qbo-api.md §4).

Grammar (keywords in any case)::

    SELECT * [, Field …] | Field [, Field …] | COUNT(*) FROM Entity
      [WHERE prop op value [AND prop op value …]]
      [ORDERBY | ORDER BY prop [ASC|DESC] [, prop [ASC|DESC] …]]
      [STARTPOSITION n] [MAXRESULTS n]

``op`` is one of ``= < > <= >=``, ``IN (v, …)`` or ``LIKE 'pat%'``. Values are single-quoted
strings with backslash escapes (``'O\\'Brien & Sons'``), numbers or ``true``/``false``. There
is no OR, no JOIN, no GROUP BY. Property names are matched case-insensitively, dotted paths
included (``MetaData.LastUpdatedTime``); a reference (``CustomerRef``) compares by its
``value``. Parse errors raise 4000, limits 4001 (:mod:`datagate_simulators.qbo.errors`).

Comparison rules [I]: digit-only strings (QBO Ids, numeric DocNumbers) compare as numbers;
ISO dates/date-times compare as instants (a value without an offset is read in the company's
offset); other strings compare case-insensitively, and ``LIKE`` is case-insensitive.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import query_parse_error, query_validation_error

__all__ = [
    "Condition",
    "Query",
    "evaluate",
    "matches",
    "parse_query",
    "resolve",
    "sort_key",
]

DEFAULT_MAX_RESULTS = 100
MAX_RESULTS_LIMIT = 1000


@dataclass(frozen=True)
class Condition:
    """``prop op value``; for ``IN`` the value is a tuple."""

    prop: str
    op: str  # "=", "<", ">", "<=", ">=", "IN", "LIKE"
    value: Any


@dataclass(frozen=True)
class Query:
    entity: str
    count: bool = False
    fields: tuple[str, ...] | None = None  # None: all properties (``*``)
    where: tuple[Condition, ...] = ()
    order_by: tuple[tuple[str, bool], ...] = ()  # (prop, descending)
    start_position: int = 1
    max_results: int = DEFAULT_MAX_RESULTS

    def constrains(self, prop: str) -> bool:
        """Whether the WHERE clause mentions ``prop`` (case-insensitive)."""
        return any(c.prop.lower() == prop.lower() for c in self.where)


# --------------------------------------------------------------------------- lexer

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:\\.|[^'\\])*')
  | (?P<number>-?\d+(?:\.\d+)?(?![\w.]))
  | (?P<op><=|>=|<>|!=|=|<|>)
  | (?P<punct>[(),*;])
  | (?P<ident>[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # string, number, op, punct, ident, end
    text: str
    pos: int  # 0-based offset in the statement

    @property
    def upper(self) -> str:
        return self.text.upper()


def _unescape(literal: str) -> str:
    # Backslash escapes the next character (docs/qbo-api.md §4: "O\'Brien").
    return re.sub(r"\\(.)", r"\1", literal[1:-1], flags=re.DOTALL)


def _tokenize(statement: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(statement):
        match = _TOKEN.match(statement, pos)
        if match is None:
            if statement[pos] == "'":
                raise query_parse_error(
                    f"Lexical error at line 1, column {pos + 1}. Unterminated string literal"
                )
            raise query_parse_error(
                f'Lexical error at line 1, column {pos + 1}. Encountered: "{statement[pos]}"'
            )
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(_Token("end", "<EOF>", len(statement)))
    return tokens


# --------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, statement: str) -> None:
        self.tokens = _tokenize(statement)
        self.i = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def fail(self, expected: str = "") -> Exception:
        tok = self.tok
        shown = "<EOF>" if tok.kind == "end" else tok.text
        hint = f" Was expecting: {expected}" if expected else ""
        return query_parse_error(f'Encountered " {shown} " at line 1, column {tok.pos + 1}.{hint}')

    def next(self) -> _Token:
        tok = self.tok
        self.i += 1
        return tok

    def accept(self, *keywords: str) -> bool:
        if self.tok.kind == "ident" and self.tok.upper in keywords:
            self.i += 1
            return True
        return False

    def expect_keyword(self, keyword: str) -> None:
        if not self.accept(keyword):
            raise self.fail(keyword)

    def expect_punct(self, char: str) -> None:
        if self.tok.kind != "punct" or self.tok.text != char:
            raise self.fail(f'"{char}"')
        self.i += 1

    def at_punct(self, char: str) -> bool:
        return self.tok.kind == "punct" and self.tok.text == char

    def identifier(self, what: str) -> str:
        if self.tok.kind != "ident" or self.tok.upper in _RESERVED:
            raise self.fail(what)
        return self.next().text

    def integer(self, keyword: str) -> int:
        tok = self.tok
        if tok.kind != "number" or "." in tok.text:
            raise self.fail(f"an integer after {keyword}")
        self.i += 1
        return int(tok.text)

    def value(self) -> Any:
        tok = self.next()
        if tok.kind == "string":
            return _unescape(tok.text)
        if tok.kind == "number":
            return Decimal(tok.text)
        if tok.kind == "ident" and tok.upper in ("TRUE", "FALSE"):
            return tok.upper == "TRUE"
        self.i -= 1
        raise self.fail("a quoted string, a number, true or false")

    # SELECT … FROM …
    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        count, fields = self.select_list()
        self.expect_keyword("FROM")
        entity = self.identifier("an entity name")
        where = self.where() if self.accept("WHERE") else ()
        order_by: tuple[tuple[str, bool], ...] = ()
        start, maximum = 1, None
        while self.tok.kind != "end" and not self.at_punct(";"):
            if self.accept("ORDERBY") or (self.accept("ORDER") and self._by()):
                if order_by:
                    raise self.fail()
                order_by = self.order_by()
            elif self.accept("STARTPOSITION"):
                start = self.integer("STARTPOSITION")
            elif self.accept("MAXRESULTS"):
                maximum = self.integer("MAXRESULTS")
            else:
                raise self.fail("ORDERBY, STARTPOSITION, MAXRESULTS or end of statement")
        if self.at_punct(";"):
            self.i += 1
        if self.tok.kind != "end":
            raise self.fail("end of statement")
        return Query(
            entity=entity,
            count=count,
            fields=fields,
            where=where,
            order_by=order_by,
            start_position=start,
            max_results=DEFAULT_MAX_RESULTS if maximum is None else maximum,
        )

    def _by(self) -> bool:
        self.expect_keyword("BY")
        return True

    def select_list(self) -> tuple[bool, tuple[str, ...] | None]:
        if self.accept("COUNT"):
            self.expect_punct("(")
            self.expect_punct("*")
            self.expect_punct(")")
            return True, None
        star = False
        fields: list[str] = []
        while True:
            if self.at_punct("*"):
                self.i += 1
                star = True
            else:
                fields.append(self.identifier("*, count(*) or a property name"))
            if not self.at_punct(","):
                break
            self.i += 1
        # PQB sends "SELECT *, Sku FROM Item": a star wins over named fields.
        return False, None if star else tuple(fields)

    def where(self) -> tuple[Condition, ...]:
        conditions = [self.condition()]
        while self.accept("AND"):
            conditions.append(self.condition())
        if self.tok.kind == "ident" and self.tok.upper == "OR":
            raise self.fail("AND (OR is not supported)")
        return tuple(conditions)

    def condition(self) -> Condition:
        prop = self.identifier("a property name")
        if self.accept("IN"):
            self.expect_punct("(")
            values = [self.value()]
            while self.at_punct(","):
                self.i += 1
                values.append(self.value())
            self.expect_punct(")")
            return Condition(prop, "IN", tuple(values))
        if self.accept("LIKE"):
            if self.tok.kind != "string":
                raise self.fail("a quoted pattern after LIKE")
            return Condition(prop, "LIKE", self.value())
        if self.tok.kind != "op" or self.tok.text in ("<>", "!="):
            raise self.fail("one of =, <, >, <=, >=, IN, LIKE")
        op = self.next().text
        return Condition(prop, op, self.value())

    def order_by(self) -> tuple[tuple[str, bool], ...]:
        keys = []
        while True:
            prop = self.identifier("a property name after ORDERBY")
            descending = False
            if self.accept("DESC"):
                descending = True
            else:
                self.accept("ASC")
            keys.append((prop, descending))
            if not self.at_punct(","):
                return tuple(keys)
            self.i += 1


_RESERVED = frozenset(
    {
        "SELECT",
        "FROM",
        "WHERE",
        "AND",
        "OR",
        "ORDERBY",
        "ORDER",
        "BY",
        "ASC",
        "DESC",
        "STARTPOSITION",
        "MAXRESULTS",
        "IN",
        "LIKE",
        "COUNT",
    }
)


def parse_query(statement: str, *, max_results_limit: int = MAX_RESULTS_LIMIT) -> Query:
    """Parse ``statement``; raises a 4000 fault when it does not parse, 4001 when out of limits."""
    if not statement or not statement.strip():
        raise query_parse_error('Encountered " <EOF> " at line 1, column 1. Empty query')
    query = _Parser(statement.strip()).parse()
    if query.max_results > max_results_limit:
        raise query_validation_error(
            f"value {query.max_results} is too large. Max allowed value is {max_results_limit}"
        )
    if query.max_results < 1:
        raise query_validation_error(f"MAXRESULTS value {query.max_results} must be at least 1")
    if query.start_position < 1:
        raise query_validation_error(
            f"STARTPOSITION value {query.start_position} must be at least 1"
        )
    return query


# --------------------------------------------------------------------------- evaluation


def resolve(record: dict[str, Any], path: str) -> Any:
    """The value at dotted ``path`` (case-insensitive); a reference yields its ``value``."""
    current: Any = record
    for part in path.split("."):
        if not isinstance(current, dict):
            return None
        lowered = part.lower()
        current = next((v for k, v in current.items() if k.lower() == lowered), None)
    if isinstance(current, dict) and "value" in current:
        current = current["value"]
    return current


_DATE_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)
_DIGITS_RE = re.compile(r"^-?\d+$")


def _as_instant(text: str, tz: tzinfo) -> datetime | None:
    if not _DATE_RE.match(text):
        return None
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tz)
        moment = datetime.fromisoformat(text.replace(" ", "T"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def sort_key(value: Any, tz: tzinfo = UTC) -> tuple[int, Any]:
    """A (rank, key) pair that orders and compares mixed QBO values consistently."""
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, datetime):
        return (3, value if value.tzinfo else value.replace(tzinfo=tz))
    if isinstance(value, int | Decimal):
        return (2, Decimal(value))
    if isinstance(value, str):
        if _DIGITS_RE.match(value):
            return (2, Decimal(value))
        instant = _as_instant(value, tz)
        if instant is not None:
            return (3, instant)
        return (4, value.casefold())
    return (5, str(value))


def _literal_key(stored_rank: int, literal: Any, tz: tzinfo) -> tuple[int, Any]:
    if stored_rank == 1 and isinstance(literal, str) and literal.lower() in ("true", "false"):
        return (1, literal.lower() == "true")
    if stored_rank == 2 and isinstance(literal, str):
        try:
            return (2, Decimal(literal.strip()))
        except InvalidOperation:
            pass
    if stored_rank == 4 and isinstance(literal, Decimal):
        return (4, str(literal).casefold())
    return sort_key(literal, tz)


def _like(value: Any, pattern: str) -> bool:
    if not isinstance(value, str):
        return False
    regex = ".*".join(re.escape(part) for part in pattern.split("%"))
    return re.fullmatch(regex, value, flags=re.IGNORECASE | re.DOTALL) is not None


def matches(record: dict[str, Any], condition: Condition, tz: tzinfo = UTC) -> bool:
    """Whether ``record`` satisfies ``condition``; a missing property never matches."""
    stored = resolve(record, condition.prop)
    if stored is None:
        return False
    if condition.op == "LIKE":
        return _like(stored, condition.value)
    rank, key = sort_key(stored, tz)
    literals = condition.value if condition.op == "IN" else (condition.value,)
    for literal in literals:
        lrank, lkey = _literal_key(rank, literal, tz)
        if lrank != rank:
            continue
        if (
            (condition.op in ("=", "IN") and key == lkey)
            or (condition.op == "<" and key < lkey)
            or (condition.op == ">" and key > lkey)
            or (condition.op == "<=" and key <= lkey)
            or (condition.op == ">=" and key >= lkey)
        ):
            return True
    return False


class _Reversed:
    """Wraps a key so that sorting it ascending orders the original descending."""

    __slots__ = ("key",)

    def __init__(self, key: Any) -> None:
        self.key = key

    def __lt__(self, other: _Reversed) -> bool:
        return other.key < self.key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and self.key == other.key


def evaluate(
    query: Query,
    records: Iterable[dict[str, Any]],
    *,
    tz: tzinfo = UTC,
    default_order: Sequence[str] = ("Id",),
) -> list[dict[str, Any]]:
    """Filter ``records`` by the WHERE clause and order them (no paging, no projection).

    Without ORDER BY, rows come back oldest first (by ``default_order``, i.e. Id).
    """
    selected = [r for r in records if all(matches(r, c, tz) for c in query.where)]
    order = query.order_by or tuple((p, False) for p in default_order)
    if query.order_by:
        # Ties keep creation order, like QBO's clustered Id order [I].
        order = (*order, *((p, False) for p in default_order))

    def key(record: dict[str, Any]) -> tuple[Any, ...]:
        parts: list[Any] = []
        for prop, descending in order:
            k = sort_key(resolve(record, prop), tz)
            parts.append(_Reversed(k) if descending else k)
        return tuple(parts)

    return sorted(selected, key=key)


def page(rows: list[dict[str, Any]], query: Query) -> list[dict[str, Any]]:
    """Apply STARTPOSITION (1-based) and MAXRESULTS."""
    start = query.start_position - 1
    return rows[start : start + query.max_results]


def company_offset(hours: float) -> timezone:
    return timezone(timedelta(hours=hours))
