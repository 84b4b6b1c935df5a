"""Captions of a synthetic image: varied English stating true relations, some stating a false one.

Every shape is named by colour + category ("a red circle"), unique within its image, so each
statement can be grounded. Phrasings are limited to those `canonical_predicate` maps back.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sgpipe.synth.geometry import Triple
from sgpipe.synth.shapes import article

# Prepositional phrases usable after a noun and after "is".
PHRASES = {
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
    "left of": ("to the left of", "left of"),
    "right of": ("to the right of", "right of"),
    "next to": ("next to", "beside"),
    "on": ("on", "on top of"),
    "inside": ("inside", "in", "within"),
    "in front of": ("in front of",),
    "behind": ("behind",),
}
# Verb forms: (participle after a noun, finite verb phrase after the subject).
VERBS = {
    "on": (("sitting on", "sits on"), ("resting on", "rests on")),
    "in front of": (("partly covering", "partly covers"),),
    "behind": (("covered by", "is covered by"), ("partly hidden by", "is partly hidden by")),
}
PREDICATE_WEIGHT = {"in front of": 3.0, "behind": 3.0, "on": 3.0, "inside": 3.0, "next to": 2.0}
FALSE_WEIGHT = {"in front of": 4.0, "behind": 4.0, "inside": 2.0, "on": 2.0}


@dataclass(slots=True)
class Statement:
    subject: int  # object index in the scene
    object: int
    predicate: str
    holds: bool


@dataclass(slots=True)
class CaptionDraft:
    text: str
    statements: list[Statement]


class _Writer:
    def __init__(self, rng: random.Random, names: list[str]):
        self.rng = rng
        self.names = names  # "red circle", per object index

    def np(self, index: int, definite: bool = False) -> str:
        name = self.names[index]
        return f"the {name}" if definite else f"{article(name)} {name}"

    def participle(self, predicate: str) -> str:
        """A phrase that follows a noun: "above", "sitting on", "covered by"."""
        if predicate in VERBS and self.rng.random() < 0.4:
            return self.rng.choice(VERBS[predicate])[0]
        return self.rng.choice(PHRASES[predicate])

    def finite(self, predicate: str) -> str:
        """A phrase that follows the subject of a clause: "is above", "rests on"."""
        if predicate in VERBS and self.rng.random() < 0.4:
            return self.rng.choice(VERBS[predicate])[1]
        return "is " + self.rng.choice(PHRASES[predicate])

    def one(self, s: Statement, opening: bool = True) -> str:
        """One statement, in one of several constructions (a noun phrase or a clause)."""
        definite = self.rng.random() < 0.3
        form = self.rng.randrange(4)
        if form == 0:
            subj, obj = self.np(s.subject, definite), self.np(s.object, definite)
            return self.prefix(f"{subj} {self.participle(s.predicate)} {obj}", opening)
        if form == 1:
            return self.clause(s, definite)
        if form == 2:
            return f"there is {self.np(s.subject)} {self.participle(s.predicate)} {self.np(s.object)}"
        relative = self.finite(s.predicate)
        that = self.rng.choice(("that", "which"))
        return self.prefix(f"{self.np(s.subject)} {that} {relative} {self.np(s.object)}", opening)

    def shared(self, first: Statement, second: Statement) -> str:
        """Two subjects sharing predicate and object: "a red circle and a green square above a star"."""
        pair = f"{self.np(first.subject)} and {self.np(second.subject)}"
        phrase = self.rng.choice(PHRASES[first.predicate])
        if self.rng.random() < 0.5:
            return f"there are {pair} {phrase} {self.np(first.object)}"
        return f"{pair} are {phrase} {self.np(first.object)}"

    def clause(self, s: Statement, definite: bool) -> str:
        return f"{self.np(s.subject, definite)} {self.finite(s.predicate)} {self.np(s.object, definite)}"

    def two(self, first: Statement, second: Statement) -> str:
        """Two statements, kept apart so no noun phrase can attach to the other one's preposition."""
        if self.rng.random() < 0.5:
            definite = self.rng.random() < 0.3
            return f"{self.clause(first, definite)} and {self.clause(second, definite)}"
        return f"{_capital(self.one(first))}. {_capital(self.one(second, opening=False))}"

    def prefix(self, noun_phrase: str, opening: bool) -> str:
        """Sometimes the opening a captioner prompted with "a picture of" produces."""
        if opening and self.rng.random() < 0.15:
            return f"{self.rng.choice(('a picture of', 'an image of'))} {noun_phrase}"
        return noun_phrase

    def finish(self, text: str) -> str:
        if ". " in text or self.rng.random() < 0.5:
            return _capital(text) + "."
        return text


def _capital(text: str) -> str:
    return text[0].upper() + text[1:]


def _pick(rng: random.Random, triples: list[Triple], weights: dict[str, float], used: set[Triple]) -> Triple:
    w = [weights.get(p, 1.0) * (0.2 if (s, o, p) in used else 1.0) for s, o, p in triples]
    return rng.choices(triples, weights=w)[0]


def write_captions(
    rng: random.Random,
    names: list[str],
    truth: set[Triple],
    false: list[Triple],
    n_captions: int,
    n_false: int,
) -> list[CaptionDraft]:
    """`n_captions` captions, the first `n_false` of a random choice stating one false relation each."""
    writer = _Writer(rng, names)
    true_list = sorted(truth)
    by_target: dict[tuple[int, str], list[int]] = {}
    for s, o, p in true_list:
        if p in PHRASES and p not in ("in front of", "behind"):
            by_target.setdefault((o, p), []).append(s)
    shareable = sorted(k for k, v in by_target.items() if len(v) >= 2)
    lying = set(rng.sample(range(n_captions), n_false))
    used: set[Triple] = set()
    drafts = []
    for k in range(n_captions):
        if k in lying:
            wrong = Statement(*_pick(rng, false, FALSE_WEIGHT, set()), holds=False)
            # A true companion statement about another pair, so the caption does not contradict itself.
            others = [t for t in true_list if {t[0], t[1]} != {wrong.subject, wrong.object}]
            if others and rng.random() < 0.3:
                right = Statement(*_pick(rng, others, PREDICATE_WEIGHT, used), holds=True)
                pair = [wrong, right] if rng.random() < 0.5 else [right, wrong]
                drafts.append(CaptionDraft(writer.finish(writer.two(*pair)), pair))
            else:
                drafts.append(CaptionDraft(writer.finish(writer.one(wrong)), [wrong]))
            continue
        roll = rng.random()
        if shareable and roll < 0.2:
            o, p = rng.choice(shareable)
            s1, s2 = rng.sample(by_target[(o, p)], 2)
            pair = [Statement(s1, o, p, True), Statement(s2, o, p, True)]
            drafts.append(CaptionDraft(writer.finish(writer.shared(*pair)), pair))
        else:
            first = _pick(rng, true_list, PREDICATE_WEIGHT, used)
            # A second clause only about another pair: "a left of b and b right of a" says nothing new.
            others = [t for t in true_list if {t[0], t[1]} != {first[0], first[1]}]
            if others and roll < 0.4:
                second = _pick(rng, others, PREDICATE_WEIGHT, used | {first})
                pair = [Statement(*first, holds=True), Statement(*second, holds=True)]
                drafts.append(CaptionDraft(writer.finish(writer.two(*pair)), pair))
            else:
                one = Statement(*first, holds=True)
                drafts.append(CaptionDraft(writer.finish(writer.one(one)), [one]))
        used.update((s.subject, s.object, s.predicate) for s in drafts[-1].statements)
    return drafts
