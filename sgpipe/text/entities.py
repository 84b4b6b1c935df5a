"""Entity mentions: quantity nouns, pronouns and coordination resolved to the nouns they stand for."""

from __future__ import annotations

from sgpipe.text.tokens import ParsedCaption
from sgpipe.text.word_classes import (
    ANAPHORA,
    FRAME_NOUNS,
    PERSON_PRONOUNS,
    RELATIONAL_NOUNS,
    RELATIVE_PRONOUNS,
)

NOMINAL = frozenset(("NOUN", "PROPN"))


def content_noun(p: ParsedCaption, i: int) -> int:
    """Follow quantity and depiction nouns to their content: "a herd of zebras", "a photo of a bus"."""
    for _ in range(4):
        if p.lemma[i] not in FRAME_NOUNS:
            break
        o = p.of_object(i)
        if o is None or p.pos[o] not in NOMINAL:
            break
        i = o
    return i


def antecedent(p: ParsedCaption, i: int, avoid: int | None) -> int | None:
    """The noun an anaphoric pronoun points back to: the nearest one before it, of its number if any."""
    number = ANAPHORA[p.lower[i]]
    fallback = None
    for j in range(i - 1, -1, -1):
        if p.pos[j] not in NOMINAL or p.lemma[j] in RELATIONAL_NOUNS:
            continue
        j = content_noun(p, j)
        if j == avoid:
            continue
        plural = p.tag[j] in ("NNS", "NNPS")
        if plural == (number == "plural"):
            return j
        if fallback is None:
            fallback = j
    return fallback


def resolve(p: ParsedCaption, i: int, avoid: int | None = None) -> int | None:
    """The entity token that token `i` stands for, or None when it stands for none."""
    if p.pos[i] == "PRON":
        word = p.lower[i]
        if word in RELATIVE_PRONOUNS:
            j = i
            while p.dep[j] != "relcl" and p.head[j] != j:
                j = p.head[j]
            if p.dep[j] != "relcl":
                return None
            return resolve(p, p.head[j], avoid)
        if word in ANAPHORA:
            found = antecedent(p, i, avoid)
            if found is None and word in PERSON_PRONOUNS:
                return i  # "he is skiing": the pronoun stands for a person
            return found
        return None
    if p.pos[i] not in NOMINAL:
        return None
    return content_noun(p, i)


def entities(p: ParsedCaption, i: int, avoid: int | None = None) -> list[int]:
    """Token `i` resolved, with the nouns coordinated to it: "a man and a woman" -> [man, woman]."""
    head = resolve(p, i, avoid)
    if head is None:
        return []
    out = [head]
    todo = [head]
    while todo:
        for k in p.kids[todo.pop()]:
            if p.dep[k] == "conj" and p.pos[k] in NOMINAL:
                resolved = content_noun(p, k)
                out.append(resolved)
                todo.append(k)
    return out


def reciprocal(p: ParsedCaption, i: int) -> bool:
    """Whether token `i` is "each other" / "one another"."""
    word = p.lower[i]
    if word not in ("other", "one"):
        return False
    partner = "each" if word == "other" else "another"
    return any(p.lower[k] == partner for k in p.kids[i])


def coordination_root(p: ParsedCaption, i: int) -> int:
    """The first of the nouns coordinated with noun `i`."""
    while p.dep[i] == "conj" and p.pos[p.head[i]] in NOMINAL:
        i = p.head[i]
    return i


def inside(p: ParsedCaption, j: int, i: int) -> bool:
    """Whether token `j` is in the subtree of token `i`."""
    while p.head[j] != j:
        j = p.head[j]
        if j == i:
            return True
    return False


def entity_lemma(p: ParsedCaption, i: int) -> str:
    """Head lemma with its noun compounds ("fire hydrant"); a person pronoun as its noun."""
    if p.pos[i] == "PRON":
        return PERSON_PRONOUNS.get(p.lower[i], p.lower[i])
    parts = [p.lower[k] for k in p.kids[i] if k < i and p.dep[k] == "compound" and p.pos[k] in NOMINAL]
    parts.append(p.lemma[i] if p.pos[i] in NOMINAL else p.lower[i])
    return " ".join(parts)


def entity_text(p: ParsedCaption, i: int) -> str:
    """The surface phrase of the entity: its head with the modifiers before it."""
    start = i
    todo = [i]
    while todo:
        for k in p.kids[todo.pop()]:
            if k < start and p.dep[k] not in ("conj", "cc", "punct", "prep", "relcl", "acl"):
                start = k
                todo.append(k)
    return " ".join(p.text[start : i + 1])
