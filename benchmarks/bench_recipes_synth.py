"""What sgpipe's own choices gain over RLIPv2's flow: both recipes on one synthetic world, one verifier.

    python benchmarks/bench_recipes_synth.py --work /tmp/bench-recipes                 # trains the verifier
    python benchmarks/bench_recipes_synth.py --work /tmp/bench-recipes \\
        --checkpoint /tmp/bench-recipes/verifier/final                                   # reuses it
    python benchmarks/bench_recipes_synth.py --quick --work /tmp/bench-recipes-quick   # (a), (b), tiny

The demo's world and verifier (`sgpipe.demo`: training world seed 1, validation world seed 2, the small
verifier trained DEMO_TRAIN_STEPS steps on one thread), trained once. On the validation world, its captions
file (hallucinated captions included) for every recipe, then the same verifier and thresholds (store 0.05,
keep 0.20, RLIPv2's) for every recipe, three choices crossed:

- parser: sgpipe's rules (`parse.backend: rules`) or SceneGraphParser as RLIPv2 called it (`sng`);
- grounding: sgpipe's lexicon, at most 8 pairs per triplet ranked by geometry (`tag.matching: lexicon`), or
  RLIPv2's paraphrase substring matching, every ordered pair of matching boxes (`rlipv2`);
- assignment: only the cells grounding proposed (`verify.assignment: candidates`), or every candidate pair
  against every relation text of the image (`all_pairs`, RLIPv2's).

(a) "sgpipe" is rules + lexicon + candidates (the demo's recipe); (b) "rlipv2" is sng + rlipv2 + all_pairs.
What (b) cannot keep of RLIPv2's flow: `verify.texts: rlipv2` (its groups of 100 pairs, texts merged over 16
groups, the 80 category names and "no objects" in the text list, the strict > 0.05, the best of duplicates)
drives RLIPv2's R-Tagger and no other verifier. On these images (at most 5 shapes: a few candidates, within
one group of 100) one R-Tagger batch holds every candidate pair and every relation text, so all_pairs scores
the same cells; the verifier reads the lemma ("sit on"), the form it was trained on, where RLIPv2's tagger
reads the surface text.

RLIPv2's matching names boxes through its COCO or Objects365 table, by category id: the world's ids 1-8
would be person ... truck there, and no caption names one. The (b) runs get the world's own table instead,
written from its instances file in RLIPv2's paraphrase format, each of the 8 shape names its only
paraphrase, matched by RLIPv2's rule (a name's paraphrase inside the entity's noun chunk).

Reported per recipe: precision and recall (of every true relation, and of the ones the captions state) of the
candidates and of the kept relations, with counts, the share of the captions' false relations kept, and how
many candidates carry a relation text the verifier never saw in training. Then `sgpipe compare` of (a)
against (b), and the same two kept sets compared claim by claim (`sgpipe.synth.truth.claims_agreement`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from sgpipe.demo import (  # noqa: E402 (after the offline settings)
    DEMO_TRAIN_STEPS,
    demo_training_shards,
    demo_worlds,
    run_candidates,
    train_demo_verifier,
    truth_figures,
    verify_candidates,
)

CLAUSE = re.compile(r"\b(is|are|sits|rests|covers|which|that)\b")  # the synthetic captions' finite forms
QUICK = (4, 8, 3)  # validation images, training images, training steps


@dataclass(frozen=True)
class Recipe:
    name: str
    parser: str  # parse.backend
    matching: str  # tag.matching
    assignment: str  # verify.assignment

    @property
    def candidates(self) -> str:
        return f"candidates-{self.parser}-{self.matching}"


RECIPES = (
    Recipe("sgpipe", "rules", "lexicon", "candidates"),  # (a)
    Recipe("rlipv2", "sng", "rlipv2", "all_pairs"),  # (b)
    Recipe("rules+rlipv2+all_pairs", "rules", "rlipv2", "all_pairs"),  # (b) with sgpipe's parser
    Recipe("rules+lexicon+all_pairs", "rules", "lexicon", "all_pairs"),  # ... and sgpipe's grounding
    Recipe("sng+lexicon+candidates", "sng", "lexicon", "candidates"),  # (a) with RLIPv2's parser
    Recipe("rules+rlipv2+candidates", "rules", "rlipv2", "candidates"),  # (a) with RLIPv2's matching
    Recipe("sng+rlipv2+candidates", "sng", "rlipv2", "candidates"),
    Recipe("sng+lexicon+all_pairs", "sng", "lexicon", "all_pairs"),
)
# From (b) to (a), one choice at a time: what each of sgpipe's choices changes, in that order.
PATH = (
    ("parser: sng -> rules", "rlipv2", "rules+rlipv2+all_pairs"),
    ("grounding: rlipv2 -> lexicon", "rules+rlipv2+all_pairs", "rules+lexicon+all_pairs"),
    ("assignment: all_pairs -> candidates", "rules+lexicon+all_pairs", "sgpipe"),
)


def world_table(world: Path, out: Path) -> Path:
    """The world's categories as a paraphrase file for RLIPv2's matching: each name its only paraphrase,
    in id order 1..N (the ids the table gives them)."""
    instances = json.loads((world / "annotations" / "instances.json").read_text())
    categories = sorted(instances["categories"], key=lambda c: c["id"])
    if [c["id"] for c in categories] != list(range(1, len(categories) + 1)):
        raise SystemExit(f"{world}: category ids are not 1..N; a paraphrase table names ids by its order")
    out.write_text(json.dumps({c["name"]: [c["name"]] for c in categories}, indent=1) + "\n")
    return out


def candidate_overrides(parser: str, matching: str, table: Path) -> list[str]:
    overrides = [f"parse.backend={parser}"]
    if matching == "rlipv2":
        overrides += ["tag.matching=rlipv2", f"tag.vocabulary={table}"]
    return overrides


def unseen_texts(candidates: Path) -> dict[str, int]:
    """Candidate relations whose text (the lemma the verifier reads) is not among those it trained on."""
    from sgpipe.tools.convert_synth import PHRASINGS

    texts = [r["predicate"] for record in _records(candidates) for r in record["relations"]]
    unseen = sum(text not in PHRASINGS for text in texts)
    return {"candidate_relations": len(texts), "candidate_relations_unseen_text": unseen}


def _records(shards: Path) -> Iterator[dict]:
    from sgpipe.shards import iter_shard_samples

    return (sample.record for sample in iter_shard_samples(str(shards)))


def assigned_kept(shards: Path) -> int:
    """Kept relations no grounded triplet proposed (all_pairs' extra cells: triplet_id -1)."""
    relations = (r for record in _records(shards) for r in record["relations"])
    return sum(1 for r in relations if r["kept"] and r["triplet_id"] == -1)


def caption_form(text: str) -> str:
    """"clause" for a caption with a finite verb or a relative clause ("the cross is above the heart", "a star
    that rests on a ring"), else "phrase": noun phrases with prepositions or participles, "there is" allowed
    ("a cross above a heart", "a star sitting on a ring"), the form BLIP's captions mostly take."""
    text = re.sub(r"\bthere (is|are)\b", "", text.lower())
    return "clause" if CLAUSE.search(text) else "phrase"


def stated_by_form(world: Path, records: Iterable[dict]) -> dict[str, dict]:
    """Of the true statements of each caption form (once per caption stating it), how many the records
    keep (it or its converse wording)."""
    from sgpipe.synth.truth import predicted_triples, same_claims

    ann = world / "annotations"
    captions = json.loads((ann / "captions.json").read_text())["annotations"]
    form = {c["id"]: caption_form(c["caption"]) for c in captions}
    kept = {record["image_id"]: predicted_triples(record, True)[0] for record in records}
    counts = {name: [0, 0] for name in ("phrase", "clause")}
    for statement in json.loads((ann / "statements.json").read_text()):
        if statement["holds"]:
            claim = (statement["subject_id"], statement["object_id"], statement["predicate"])
            found = bool(kept.get(statement["image_id"], set()) & same_claims(claim))
            counts[form[statement["caption_id"]]][0] += found
            counts[form[statement["caption_id"]]][1] += 1
    return {
        name: {"found": found, "stated": total, "recall": round(found / total, 4) if total else None}
        for name, (found, total) in counts.items()
    }


def _figures(metrics: dict) -> dict:
    keys = ("predicted", "true_positives", "precision", "recall", "true_relations", "stated_relations",
            "stated_found", "recall_stated", "hallucinations", "hallucinations_found",
            "hallucinations_predicted", "unmapped_predicates")  # fmt: skip
    return {k: metrics[k] for k in keys}


def run_recipes(world: Path, checkpoint: Path, work: Path, recipes: tuple[Recipe, ...]) -> list[dict]:
    table = world_table(world, work / "world_paraphrases.json")
    seconds: dict[str, float] = {}
    for recipe in {r.candidates: r for r in recipes}.values():  # parse + tag once per parser and grounding
        shutil.rmtree(work / recipe.candidates, ignore_errors=True)
        started = time.perf_counter()
        overrides = candidate_overrides(recipe.parser, recipe.matching, table)
        print(run_candidates(world, work / recipe.candidates, overrides), file=sys.stderr)
        seconds[recipe.candidates] = round(time.perf_counter() - started, 1)
    rows = []
    for recipe in recipes:
        shards = work / f"verified-{recipe.name}"
        shutil.rmtree(shards, ignore_errors=True)
        started = time.perf_counter()
        overrides = [f"verify.assignment={recipe.assignment}"]
        print(verify_candidates(work / recipe.candidates, checkpoint, shards, overrides), file=sys.stderr)
        verify_seconds = round(time.perf_counter() - started, 1)
        before, after = truth_figures(world, work / recipe.candidates, shards)
        rows.append({
            "recipe": recipe.name, "parser": recipe.parser, "matching": recipe.matching,
            "assignment": recipe.assignment, "candidates": _figures(before), "kept": _figures(after),
            "kept_assigned_by_verifier": assigned_kept(shards), **unseen_texts(work / recipe.candidates),
            "kept_stated_by_caption_form": stated_by_form(world, _records(shards)),
            "parse_tag_seconds": seconds[recipe.candidates], "verify_seconds": verify_seconds,
        })  # fmt: skip
    return rows


def compare_kept(work: Path) -> dict:
    """(a) against (b): `sgpipe compare` (relation texts as the export writes them) and claim by claim."""
    from sgpipe.synth.truth import claims_agreement
    from sgpipe.tools.compare import compare

    a, b = work / "verified-sgpipe", work / "verified-rlipv2"
    summary = compare(str(a), str(b), out=str(work / "compare.json"))
    result = json.loads((work / "compare.json").read_text())
    claims = claims_agreement(_records(a), _records(b))
    return {"compare_summary": summary, "compare_relations": result["relations"], "claims": claims}


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _share(found: int, total: int, ratio: float | None) -> str:
    return f"{found}/{total} {_number(ratio)}"


def format_table(rows: list[dict]) -> str:
    header = ("recipe", "relations", "precision (true)", "recall (of all true)", "stated true found",
              "false kept")  # fmt: skip
    widths = (-34, 9, 17, 21, 17, 14)  # negative: left-aligned
    lines = [" ".join(f"{text:<{-w}}" if w < 0 else f"{text:>{w}}" for text, w in zip(header, widths))]
    for row in rows:
        for stage in ("candidates", "kept"):
            m = row[stage]
            name = row["recipe"] + " candidates" if stage == "candidates" else "  kept"
            precision = f"{_number(m['precision'])} ({m['true_positives']})"
            lines.append(
                f"{name:<34} {m['predicted']:>9} {precision:>17} "
                f"{_share(m['true_positives'], m['true_relations'], m['recall']):>21} "
                f"{_share(m['stated_found'], m['stated_relations'], m['recall_stated']):>17} "
                f"{_share(m['hallucinations_found'], m['hallucinations'], m['hallucinations_predicted']):>14}"
            )
    return "\n".join(lines)


def choice_steps(rows: list[dict]) -> list[dict]:
    """The kept relations' figures along PATH, each step's change (where every recipe of it ran)."""
    kept = {row["recipe"]: row["kept"] for row in rows}
    steps = []
    for choice, before, after in PATH:
        if before in kept and after in kept:
            change = {
                k: round(kept[after][k] - kept[before][k], 4)
                for k in ("precision", "recall", "recall_stated", "hallucinations_predicted")
                if kept[after][k] is not None and kept[before][k] is not None
            }
            steps.append({"choice": choice, "from": before, "to": after, "kept_change": change})
    return steps


def format_forms(rows: list[dict]) -> str:
    lines = ["true statements kept, by the form of the caption stating them:"]
    for row in rows:
        forms = row["kept_stated_by_caption_form"]
        shares = (f"{name} {_share(f['found'], f['stated'], f['recall'])}" for name, f in forms.items())
        text = ", ".join(shares)
        lines.append(f"  {row['recipe']:<26} {text}")
    return "\n".join(lines)


def format_steps(steps: list[dict]) -> str:
    lines = ["kept relations, from (b) to (a) one choice at a time (change of each figure):"]
    for step in steps:
        change = ", ".join(f"{k} {v:+.3f}" for k, v in step["kept_change"].items())
        lines.append(f"  {step['choice']:<36} {change}")
    return "\n".join(lines)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-recipes"))
    parser.add_argument("--images", type=int, default=200, help="validation images")
    parser.add_argument("--train-images", type=int, default=1000, help="training images (the demo's)")
    parser.add_argument("--train-steps", type=int, default=DEMO_TRAIN_STEPS, help="the demo's by default")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a verifier to reuse: no training")
    parser.add_argument("--quick", action="store_true", help="a tiny world, 3 steps, (a) and (b): the tests'")
    parser.add_argument("--output", type=Path, default=None, help="write the results JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.train_images, args.train_steps = QUICK
    return args


def _verifier(args: argparse.Namespace, train_world: Path) -> tuple[Path, float | None]:
    """The verifier to measure with: --checkpoint, or the demo's, trained here; and the training time."""
    if args.checkpoint is not None:
        return args.checkpoint, None
    started = time.perf_counter()
    shards = demo_training_shards(args.work, train_world)
    checkpoint = train_demo_verifier(args.work, shards, args.train_steps, args.seed)
    print(f"verifier: {checkpoint} (reuse it with --checkpoint {checkpoint})", file=sys.stderr)
    return checkpoint, round(time.perf_counter() - started, 1)


def main(argv: list[str] | None = None) -> dict:
    args = _arguments(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    train_world, world = demo_worlds(args.work, args.images, args.train_images)
    checkpoint, train_seconds = _verifier(args, train_world)
    rows = run_recipes(world, checkpoint, args.work, RECIPES[:2] if args.quick else RECIPES)
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "validation_images": args.images,
        "checkpoint": str(checkpoint),
        "train_steps": None if args.checkpoint else args.train_steps,
        "train_seconds": train_seconds,
        "recipes": rows,
        "choice_steps": choice_steps(rows),
        "a_against_b": compare_kept(args.work),
        "seconds": round(time.perf_counter() - started, 1),
    }
    claims = results["a_against_b"]["claims"]
    print(format_table(rows))
    print(format_forms(rows))
    if results["choice_steps"]:
        print(format_steps(results["choice_steps"]))
    print("\n(a) sgpipe against (b) rlipv2, kept relations, `sgpipe compare`:")
    print(results["a_against_b"]["compare_summary"])
    print(
        f"claim by claim (canonical predicate, converse wordings one claim): {claims['both']} in both, "
        f"{claims['only_a']} only in (a), {claims['only_b']} only in (b), "
        f"Jaccard {_number(claims['jaccard'])}"
    )
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
