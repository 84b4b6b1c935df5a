"""Candidate recall of the tag stage on a synthetic world: parse -> tag over the world's captions.

    python benchmarks/bench_tag_synth.py --images 300 --seed 0
    python benchmarks/bench_tag_synth.py --world OUT   # an existing world (sgpipe synth)

A true relation (subject id, object id, predicate) is recalled when some candidate relation has
the same box pair and the same canonical predicate (sgpipe.synth.truth.canonical_predicate);
a converse wording counts ("a star covered by a circle" is recalled by (circle, in front of, star)).
Recall is reported over the true relations the captions state (what a caption-driven pipeline
can ground at best; the acceptance target), over those of them that some parsed triplet states
(what the tag stage itself can ground: misses beyond these are the parser's), and over every
true relation of the world.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sgpipe.config import ParseConfig, TagConfig
from sgpipe.records import Box, Caption, Sample, sample_key
from sgpipe.stages.base import reraise
from sgpipe.stages.parse import ParseStage
from sgpipe.stages.tag import TagStage
from sgpipe.synth.truth import canonical_predicate, same_claims
from sgpipe.synth.world import generate_world

Triple = tuple[int, int, str]


def load_samples(world: Path) -> tuple[list[Sample], list[str]]:
    ann = world / "annotations"
    instances = json.loads((ann / "instances.json").read_text())
    captions = json.loads((ann / "captions.json").read_text())
    names = {c["id"]: c["name"] for c in instances["categories"]}
    samples = {
        im["id"]: Sample(
            key=sample_key("synth", im["id"]),
            dataset="synth",
            image_id=im["id"],
            file_name=im["file_name"],
            width=im["width"],
            height=im["height"],
        )
        for im in instances["images"]
    }
    for a in instances["annotations"]:
        samples[a["image_id"]].objects.append(
            Box(
                id=a["id"],
                category=names[a["category_id"]],
                category_id=a["category_id"],
                bbox=[float(v) for v in a["bbox"]],
                iscrowd=int(a.get("iscrowd", 0)),
            )
        )
    for c in captions["annotations"]:
        samples[c["image_id"]].captions.append(Caption(id=c["id"], text=c["caption"], source="annotation"))
    return [samples[i] for i in sorted(samples)], [c["name"] for c in instances["categories"]]


def truth_sets(world: Path) -> tuple[dict[int, set[Triple]], dict[int, set[Triple]]]:
    ann = world / "annotations"
    every: dict[int, set[Triple]] = {}
    for entry in json.loads((ann / "relations.json").read_text()):
        every[entry["image_id"]] = {
            (r["subject_id"], r["object_id"], r["predicate"]) for r in entry["relations"]
        }
    stated: dict[int, set[Triple]] = {}
    for row in json.loads((ann / "statements.json").read_text()):
        if row["holds"]:
            stated.setdefault(row["image_id"], set()).add(
                (row["subject_id"], row["object_id"], row["predicate"])
            )
    return every, stated


def recall(truth: dict[int, set[Triple]], predicted: dict[int, set[Triple]]) -> tuple[int, int]:
    hits = total = 0
    for image_id, triples in truth.items():
        for t in triples:
            total += 1
            hits += bool(same_claims(t) & predicted.get(image_id, set()))
    return hits, total


def parsed_statements(samples: list[Sample], matcher) -> dict[int, set[Triple]]:
    """Per image, every (subject id, object id, canonical predicate) some parsed triplet could mean:
    the relations the tag stage can ground at all, given the parser's output."""
    out: dict[int, set[Triple]] = {}
    for s in samples:
        for t in s.triplets:
            p = canonical_predicate(t.predicate)
            subjects, objects = (
                set(matcher.match(t.subject).categories),
                set(matcher.match(t.object).categories),
            )
            if p is None or not subjects or not objects:
                continue
            for a in s.objects:
                for b in s.objects:
                    if a is not b and a.category in subjects and b.category in objects:
                        out.setdefault(s.image_id, set()).update(same_claims((a.id, b.id, p)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hallucination-rate", type=float, default=0.3)
    parser.add_argument(
        "--world", type=Path, help="an existing world folder (else one is generated in a temp dir)"
    )
    parser.add_argument("--max-pairs", type=int, default=TagConfig.max_pairs_per_triplet)
    parser.add_argument(
        "--embedding-model", default="none", help='"minilm" to enable the fallback (not needed here)'
    )
    parser.add_argument("--spacy-model", default=ParseConfig.spacy_model)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        world = args.world
        if world is None:
            world = Path(tmp) / "world"
            print(generate_world(world, args.images, args.seed, args.hallucination_rate), file=sys.stderr)
        samples, categories = load_samples(world)
        every, stated = truth_sets(world)

    parse = ParseStage(ParseConfig(spacy_model=args.spacy_model))
    tag = TagStage(
        TagConfig(max_pairs_per_triplet=args.max_pairs, embedding_model=args.embedding_model), categories
    )
    parse.handler = tag.handler = reraise
    parse.setup(), tag.setup()
    parse(samples)
    tag(samples)

    predicted: dict[int, set[Triple]] = {}
    unmapped = 0
    counters: Counter[str] = Counter()
    for s in samples:
        counters.update(s.counters)
        for r in s.relations:
            p = canonical_predicate(r.predicate)
            if p is None:
                unmapped += 1
                continue
            predicted.setdefault(s.image_id, set()).add((r.subject_id, r.object_id, p))
    n_candidates = sum(len(s.relations) for s in samples)
    n_triplets = sum(len(s.triplets) for s in samples)
    hit_stated, n_stated = recall(stated, predicted)
    hit_every, n_every = recall(every, predicted)
    parsed = parsed_statements(samples, tag.matcher)
    groundable = {i: {t for t in ts if same_claims(t) & parsed.get(i, set())} for i, ts in stated.items()}
    hit_groundable, n_groundable = recall(groundable, predicted)
    result = {
        "images": len(samples),
        "boxes": sum(len(s.objects) for s in samples),
        "captions": sum(len(s.captions) for s in samples),
        "triplets": n_triplets,
        "candidates": n_candidates,
        "candidates_unmapped_predicate": unmapped,
        "true_relations_stated": n_stated,
        "recall_stated": round(hit_stated / max(n_stated, 1), 4),
        "true_relations_stated_and_parsed": n_groundable,
        "recall_stated_and_parsed": round(hit_groundable / max(n_groundable, 1), 4),
        "true_relations_all": n_every,
        "recall_all": round(hit_every / max(n_every, 1), 4),
        "candidates_per_stated_true_relation": round(n_candidates / max(n_stated, 1), 3),
        "candidates_per_triplet": round(n_candidates / max(n_triplets, 1), 3),
        "tag_seconds": round(tag.seconds, 3),
        "tag_images_per_second": round(len(samples) / max(tag.seconds, 1e-9), 1),
        "parse_seconds": round(parse.seconds, 3),
        "vocabulary": tag.describe()["vocabulary"],
        "max_pairs_per_triplet": args.max_pairs,
        "counters": {k: v for k, v in sorted(counters.items()) if k.startswith("tag_")},
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
