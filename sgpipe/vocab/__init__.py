"""Category vocabularies (COCO, Objects365) and the lexicon that maps entity lemmas onto them."""

from sgpipe.vocab.lexicon import Lexicon, choose_vocabulary, load_vocabulary, normalise

__all__ = ["Lexicon", "choose_vocabulary", "load_vocabulary", "normalise"]
