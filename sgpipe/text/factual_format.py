"""Reading the scene graphs that FACTUAL-style text2text parsers write.

The format is a list of tuples, `( man , ride , horse ) , ( horse , is , brown )`: relations
`( subject , predicate , object )` and attributes `( entity , is , value )` (a number is a
quantity, `( pigs , is , 2 )`). Generations are read leniently, the way they come out of a model:
spacing around symbols varies, an echoed prompt and the marks of FACTUAL's "-id" models (`v:sit`,
`pv:park`, `monkey:1`) are dropped, repeated tuples count once. What cannot be read as a tuple of
three non-empty parts (a pair, a tuple cut off by the token limit, text outside any parentheses)
is dropped and counted in `malformed`; it never raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ATTRIBUTE_PREDICATE = "is"
_PROMPT_ECHO = re.compile(r"^\s*generate scene graph\s*:", re.IGNORECASE)
_ID_MARKS = re.compile(r"(?<![\w])p?v:|:\d+\b")  # verb / passive-verb prefixes, node indexes
_PIECES = re.compile(r"[()]|[^()]+")


@dataclass(frozen=True)
class GeneratedGraph:
    relations: tuple[tuple[str, str, str], ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()  # (entity, value), kept apart from the relations
    malformed: int = 0  # fragments dropped: wrong arity, unclosed or stray parentheses, loose text


def _clean(part: str) -> str:
    return " ".join(part.lower().split())


def _tuple(content: str) -> list[str] | None:
    """Three non-empty parts, or None. Empty parts from doubled commas are ignored."""
    parts = [p for p in (_clean(p) for p in content.split(",")) if p]
    return parts if len(parts) == 3 else None


def _loose(text: str) -> bool:
    """Whether text between tuples holds more than the separating commas."""
    return bool(text.replace(",", "").strip())


def read_graph(text: str) -> GeneratedGraph:
    """Relations, attributes and the count of malformed fragments of one generated graph."""
    text = _ID_MARKS.sub("", _PROMPT_ECHO.sub("", text or ""))
    relations: dict[tuple[str, str, str], None] = {}
    attributes: dict[tuple[str, str], None] = {}
    malformed = 0
    group: list[str] | None = None  # pieces of the tuple being read, None outside parentheses

    def close(content: str) -> None:
        nonlocal malformed
        parts = _tuple(content)
        if parts is None:
            malformed += 1
        elif parts[1] == ATTRIBUTE_PREDICATE:
            attributes[(parts[0], parts[2])] = None
        else:
            relations[(parts[0], parts[1], parts[2])] = None

    for piece in _PIECES.findall(text):
        if piece == "(":
            if group is not None:  # a tuple never closed before the next one opens
                malformed += 1
            group = []
        elif piece == ")":
            if group is None:
                malformed += 1  # a stray closing parenthesis
            else:
                close("".join(group))
                group = None
        elif group is not None:
            group.append(piece)
        elif _loose(piece):
            malformed += 1  # words outside any tuple
    if group is not None:
        malformed += 1  # cut off by the token limit
    return GeneratedGraph(tuple(relations), tuple(attributes), malformed)
