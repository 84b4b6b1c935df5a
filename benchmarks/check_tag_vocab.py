"""How real caption entities map onto COCO categories: lexicon, embedding fallback, or why not.

    python benchmarks/check_tag_vocab.py [--data ../shared/data] [--threshold 0.55]

Parses the COCO val2017 caption sample (samples/coco_captions_val2017_sample.json) and looks every
subject/object head up through the COCO lexicon and the MiniLM fallback, printing the counts by
outcome and every distinct embedding match, so the vocabulary and threshold can be judged by eye.
Needs the shared data folder; exits quietly when it is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--threshold", type=float, default=0.55)
    args = parser.parse_args()
    captions_file = args.data / "samples" / "coco_captions_val2017_sample.json"
    if not captions_file.exists():
        print(f"skipped: {captions_file} not found", file=sys.stderr)
        return

    from sgpipe.models.text_embedder import TextEmbedder
    from sgpipe.text.parser import CaptionParser
    from sgpipe.vocab import Lexicon, load_vocabulary
    from sgpipe.vocab.matcher import EntityMatcher

    texts = [a["caption"] for a in json.loads(captions_file.read_text())["annotations"]]
    parsed = list(CaptionParser("en_core_web_sm").parse_many(texts))
    lemmas = [e for triplets in parsed for t in triplets for e in (t.subject, t.object)]
    matcher = EntityMatcher(
        Lexicon(list(load_vocabulary("coco")), "coco"), TextEmbedder("minilm"), args.threshold
    )
    outcomes: Counter[str] = Counter()
    by_embedding: dict[str, tuple[str, ...]] = {}
    unknown: Counter[str] = Counter()
    for lemma in lemmas:
        match = matcher.match(lemma)
        outcomes[match.source] += 1
        if match.source == "embedding":
            by_embedding[lemma] = match.categories[:3]
        elif match.source == "unknown_word":
            unknown[lemma] += 1
    print(
        f"{len(texts)} captions, {len(lemmas)} entity mentions: "
        + ", ".join(f"{k} {v}" for k, v in outcomes.most_common())
    )
    print("embedding matches:", "; ".join(f"{k} -> {', '.join(v)}" for k, v in sorted(by_embedding.items())))
    print("unknown words:", ", ".join(f"{k} ({v})" for k, v in unknown.most_common()))


if __name__ == "__main__":
    main()
