"""Dependency rules: one parsed caption -> its triplets."""

from __future__ import annotations

from typing import Any

from sgpipe.records import Triplet
from sgpipe.text.entities import (
    NOMINAL,
    antecedent,
    coordination_root,
    entities,
    entity_lemma,
    entity_text,
    inside,
    reciprocal,
    resolve,
)
from sgpipe.text.lemmas import RuleLemmas
from sgpipe.text.tokens import ParsedCaption
from sgpipe.text.word_classes import (
    ANAPHORA,
    CLOTHING_NOUNS,
    CONTAINER_NOUNS,
    FRAME_NOUNS,
    PREDICATE_LEMMAS,
    PREPOSITION_FORMS,
    RELATIONAL_NOUNS,
    SIDE_WORDS,
)

SUBJECT_DEPS = frozenset(("nsubj",))
INHERIT_DEPS = frozenset(("conj", "xcomp", "advcl"))  # verbs that share the subject of their head verb
WORN_WITH = frozenset(("in", "with"))  # prepositions that mean "wearing" before a garment
LOCATIVE_MODIFIERS = frozenset(("advmod", "acomp", "npadvmod", "amod"))  # "next to", "close to"


class _Extractor:
    def __init__(self, parse: ParsedCaption) -> None:
        self.p = parse
        # (subject token, predicate lemma, predicate surface, object token)
        self.found: list[tuple[int, str, str, int]] = []

    # -- predicates ------------------------------------------------------------------------

    def _prep(self, k: int, words: list[str], surface: list[str]) -> list[tuple[list[str], list[str], int]]:
        """A preposition (or "next"/"close" + preposition) -> [(lemma words, surface words, object)]."""
        p = self.p
        words = words + [p.lower[k]]
        surface = surface + [p.text[k]]
        objects = [o for o in p.kids[k] if p.dep[o] == "pobj"]
        if not objects:
            out = []
            for c in p.kids[k]:
                if p.dep[c] in ("prep", "pcomp") and p.pos[c] == "ADP":
                    out.extend(self._prep(c, words, surface))  # "out of", "in between"
                elif p.dep[c] == "pcomp" and p.tag[c] == "VBG":  # "on cutting board": a noun read as a verb
                    out.extend((words, surface, o) for o in p.kids[c] if p.dep[o] == "dobj")
            return out
        out = []
        for o in objects:
            if p.lemma[o] in RELATIONAL_NOUNS:
                inner = p.of_object(o)
                if inner is not None:  # "in front of", "on top of", "at the side of"
                    out.append((words + [p.lemma[o], "of"], surface + [p.text[o], "of"], inner))
                    continue
            out.append((words, surface, o))
        return out

    def _preps_of(self, i: int) -> list[tuple[list[str], list[str], int]]:
        p = self.p
        out = []
        for k in p.kids[i]:
            dep = p.dep[k]
            if dep == "prep":
                if p.lower[k] != "of":
                    out.extend(self._prep(k, [], []))
                    continue
            elif dep in LOCATIVE_MODIFIERS and p.pos[k] in ("ADV", "ADJ"):
                for c in p.kids[k]:
                    if p.dep[c] == "prep":
                        out.extend(self._prep(c, [p.lower[k]], [p.text[k]]))
        return [(PREPOSITION_FORMS.get(" ".join(w), w), s, o) for w, s, o in out]

    # -- relations -------------------------------------------------------------------------

    def _add(self, subject: int, lemma: str, surface: str, obj: int, alone: bool = False) -> None:
        """Record subject-predicate-object for the entities the two tokens stand for; `alone`
        leaves out the nouns coordinated with the subject."""
        p = self.p
        if alone:
            head = resolve(p, subject)
            subjects = [] if head is None else [head]
        else:
            subjects = entities(p, subject)
        if reciprocal(p, obj):
            if len(subjects) > 1:  # "a man and a woman facing each other"
                self.found.extend((s, lemma, surface, o) for s in subjects for o in subjects if s != o)
            elif subjects and p.tag[subjects[0]] in ("NNS", "NNPS"):  # "two giraffes next to each other"
                self.found.append((subjects[0], lemma, surface, subjects[0]))
            return
        for s in subjects:
            for o in entities(self.p, obj, avoid=s):
                if s == o:
                    continue
                if lemma in WORN_WITH and p.lemma[o] in CLOTHING_NOUNS:
                    self.found.append((s, "wear", surface, o))  # "a man in a red shirt" -> man wear shirt
                else:
                    self.found.append((s, lemma, surface, o))

    def _arguments(self, v: int, depth: int = 0) -> tuple[list[int], list[int]]:
        """(subjects, patients) of verb `v`, inherited from the verb or noun it hangs on."""
        p = self.p
        subjects = [k for k in p.kids[v] if p.dep[k] in SUBJECT_DEPS]
        patients = [k for k in p.kids[v] if p.dep[k] == "nsubjpass"]
        if p.lemma[v] == "be" and any(p.dep[k] == "expl" for k in p.kids[v]):
            subjects = [k for k in p.kids[v] if p.dep[k] == "attr"]  # "there is a cat on a mat"
        if subjects or patients or depth > 3:
            return subjects, patients
        dep, head = p.dep[v], p.head[v]
        if dep in ("acl", "relcl") and p.pos[head] in NOMINAL | {"PRON"}:
            head = coordination_root(self.p, head)
            if p.tag[v] == "VBN":
                return [], [head]  # "a pizza cut by a man", "boats tied to a dock"
            return [head], []
        if dep in INHERIT_DEPS and head != v and p.pos[head] in ("VERB", "AUX"):
            return self._arguments(head, depth + 1)
        # "woman holding kite" read as a verb with a noun modifier before it: that noun is the subject.
        return [
            k for k in p.kids[v] if k < v and p.dep[k] in ("npadvmod", "compound") and p.pos[k] in NOMINAL
        ], []

    def verb(self, v: int) -> None:
        p = self.p
        subjects, patients = self._arguments(v)
        if not subjects and not patients:
            return
        side = p.of_object(v) if p.lower[v] in SIDE_WORDS else None
        if side is not None:
            # "a ring (that is) left of a square": the small model reads "left" as the verb "leave";
            # "left of" / "right of" is a complex preposition, like "ahead of".
            for s in subjects or patients:
                self._add(s, f"{p.lower[v]} of", f"{p.text[v]} of", side)
            return
        agents = [o for k in p.kids[v] if p.dep[k] == "agent" for o in p.kids[k] if p.dep[o] == "pobj"]
        is_be = p.lemma[v] == "be"
        lemma = PREDICATE_LEMMAS.get(p.lemma[v], p.lemma[v])
        surface = p.text[v]
        for k in p.kids[v]:
            if p.dep[k] == "prt":
                lemma += " " + p.lower[k]
                surface += " " + p.text[k]
        if patients and agents:
            for a in agents:
                for t in patients:
                    self._add(a, lemma, surface, t)
        actors = subjects or patients
        objects = [] if is_be else [k for k in p.kids[v] if p.dep[k] in ("dobj", "dative")]
        if not objects and not is_be:
            objects = self._misplaced_object(v, subjects)
        if objects:
            for s in actors:
                for o in objects:
                    self._add(s, lemma, surface, o)
        self._stranded(v, subjects, actors, lemma, surface, is_be)
        for words, words_surface, o in self._preps_of(v):
            if is_be or objects:
                pred, pred_surface = " ".join(words), " ".join(words_surface)
            else:
                pred, pred_surface = lemma + " " + " ".join(words), surface + " " + " ".join(words_surface)
            for s in actors:
                self._add(s, pred, pred_surface, o)

    def _misplaced_object(self, v: int, subjects: list[int]) -> list[int]:
        """The object of a headline-style clause the parser did not attach as one.

        "lady holding baby" is read as lady <-npadvmod- holding -amod-> baby; "rope the man is
        holding" puts the fronted object before the subject.
        """
        p = self.p
        head = p.head[v]
        if p.dep[v] == "amod" and head > v and p.pos[head] in NOMINAL and subjects and subjects[0] < v:
            return [head]
        if subjects and p.dep[subjects[0]] == "nsubj" and p.head[subjects[0]] == v:
            return [
                k for k in p.kids[v] if k < subjects[0] and p.dep[k] == "npadvmod" and p.pos[k] in NOMINAL
            ]
        return []

    def _stranded(
        self, v: int, subjects: list[int], actors: list[int], lemma: str, surface: str, is_be: bool
    ) -> None:
        """A preposition left without its object: the object is the noun the clause describes.

        "the bench the man sits on" (a relative clause), "the paper the doughnut is on" (read as a
        copula with two subjects: the first is the object).
        """
        p = self.p
        stranded = [
            k
            for k in p.kids[v]
            if k > v
            and p.dep[k] == "prep"
            and not any(p.dep[c] in ("pobj", "prep", "pcomp") for c in p.kids[k])
        ]
        if not stranded:
            return
        if p.dep[v] == "relcl":
            pairs = [(s, p.head[v]) for s in actors]
        elif is_be and len(subjects) >= 2:
            pairs = [(subjects[-1], subjects[0])]
        else:
            return
        for k in stranded:
            pred = p.lower[k] if is_be else f"{lemma} {p.lower[k]}"
            pred_surface = p.text[k] if is_be else f"{surface} {p.text[k]}"
            for s, o in pairs:
                self._add(s, pred, pred_surface, o)

    def noun(self, i: int) -> None:
        p = self.p
        lemma = p.lemma[i]
        for k in p.kids[i]:
            dep = p.dep[k]
            if dep == "poss" and p.pos[k] in NOMINAL:  # "the man's hat" -> man have hat
                self._add(k, "have", p.text[k + 1] if k + 1 < p.n else "'s", i)
            elif dep == "prep" and p.lower[k] == "of":
                if lemma in FRAME_NOUNS or lemma in RELATIONAL_NOUNS:
                    continue
                for o in p.kids[k]:
                    if p.dep[o] != "pobj":
                        continue
                    if lemma in CONTAINER_NOUNS:  # "a bowl of oranges" -> orange in bowl
                        self._add(o, CONTAINER_NOUNS[lemma], "of", i)
                    else:  # "the seat of the toilet" -> toilet have seat
                        self._add(o, "have", "of", i)
            elif dep == "aux" and p.lemma[k] == "have":  # "the bird has beak" read with beak as the root
                for s in p.kids[i]:
                    if p.dep[s] == "nsubj":
                        self._add(s, "have", p.text[k], i)
        preps = self._preps_of(i)
        if not preps:
            return
        # A phrase after the last of coordinated nouns speaks of all of them ("a man and a dog on a
        # bed") unless another of them has a phrase of its own ("a man with a hat and a woman with a
        # bag"); a phrase before the next of them speaks of its own noun only.
        shared = False
        if p.dep[i] == "conj":
            root = coordination_root(p, i)
            shared = not any(self._has_prep(m) for m in entities(p, root) if m != i)
        later = [c for c in p.kids[i] if p.dep[c] == "conj" and p.pos[c] in NOMINAL]
        for words, words_surface, o in preps:
            pred, pred_surface = " ".join(words), " ".join(words_surface)
            if p.pos[o] == "PRON" and p.lower[o] in ANAPHORA:
                back = antecedent(self.p, o, i)
                if back is not None and inside(self.p, back, i):
                    # "a cart with luggage on it": the phrase speaks of the luggage, "it" is the cart.
                    self._add(back, pred, pred_surface, i)
                    continue
            if shared and o > i:
                self._add(root, pred, pred_surface, o)
            else:
                self._add(i, pred, pred_surface, o, alone=any(c > o for c in later))

    def _has_prep(self, i: int) -> bool:
        p = self.p
        return any(p.dep[k] == "prep" and p.lower[k] != "of" for k in p.kids[i])

    def run(self) -> list[tuple[int, str, str, int]]:
        p = self.p
        for i in range(p.n):
            pos = p.pos[i]
            if pos == "VERB" or (pos == "AUX" and p.dep[i] not in ("aux", "auxpass")):
                self.verb(i)
            elif pos in NOMINAL:
                self.noun(i)
        return self.found


def extract_triplets(doc: Any, lemmas: RuleLemmas | None = None) -> list[Triplet]:
    """Triplets of one parsed caption, deduplicated on their lemma key, in order of discovery.

    With `lemmas` (the lemmatizer's tables), lemmas are looked up by tag, so the pipeline may run
    without its lemmatizer, and regular tagging slips are repaired ("leaves" tagged as a verb).
    """
    parse = ParsedCaption(doc, lemmas)
    seen: set[tuple[str, str, str]] = set()
    out: list[Triplet] = []
    found = _Extractor(parse).run()
    # "with" is the vaguest predicate: dropped when a more specific one links the same two mentions
    # ("a couch with a cat sitting on it" -> cat sit on couch).
    specific = {frozenset((s, o)) for s, lemma, _, o in found if lemma != "with"}
    for s, lemma, surface, o in found:
        if lemma == "with" and frozenset((s, o)) in specific:
            continue
        key = (entity_lemma(parse, s), lemma, entity_lemma(parse, o))
        if key in seen:
            continue
        seen.add(key)
        out.append(
            Triplet(
                subject=key[0],
                predicate=lemma,
                object=key[2],
                subject_text=entity_text(parse, s),
                predicate_text=surface,
                object_text=entity_text(parse, o),
            )
        )
    return out
