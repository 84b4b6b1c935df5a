"""Caption text -> subject-predicate-object triplets with spaCy dependency rules.

`nlp.py` loads the spaCy pipeline, `word_classes.py` holds the closed word classes the rules use,
`extract.py` walks one parsed caption, `parser.py` batches captions and merges an image's triplets.
"""

from sgpipe.text.extract import extract_triplets
from sgpipe.text.nlp import load_spacy
from sgpipe.text.parser import CaptionParser, merge_triplets, prepare_caption

__all__ = ["CaptionParser", "extract_triplets", "load_spacy", "merge_triplets", "prepare_caption"]
