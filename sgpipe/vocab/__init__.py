"""What the tag stage grounds triplets with: the category vocabularies, the lexicon that maps entity
lemmas onto a dataset's box categories (`lexicon.py`, `matcher.py`) and the geometric prior that ranks
a triplet's candidate box pairs (`tag_score.py`).

Package data, curated by hand from everyday words and WordNet-style hyponymy (not substring lists):

- `coco.json`, `objects365.json`: official category name -> its lemmas (singular, lowercase,
  multiword allowed): synonyms ("sofa" for couch) and hyponyms ("skier", "girl" for person). A term
  may name several categories ("glass": cup, wine glass); the image's boxes decide.
- `non_objects.json`: kind -> words that name no box-able thing (body_part, clothing, part, stuff).
  They keep such words away from the embedding fallback and name the reason in the stats.

Body parts, garments and hair are never terms of person; "hot dog" is not a dog.
"""

from sgpipe.vocab.lexicon import Lexicon, choose_vocabulary, load_vocabulary, normalise

__all__ = ["Lexicon", "choose_vocabulary", "load_vocabulary", "normalise"]
