import os

import pytest

from sgpipe.errors import ModelNotAvailableError
from sgpipe.models.text_embedder import TextEmbedder, resolve_model_path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "a",
    "dog",
    "cat",
    "red",
    "circle",
    "on",
    "the",
    "table",
]


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny_encoder")
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(WORDS)}, do_lower_case=True)
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(WORDS),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(path)
    return str(path)


def _alone(folder, text):
    """The phrase's vector computed here: the encoder run on it alone (no padding), mean of its tokens'
    states, L2-normalised."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokens = AutoTokenizer.from_pretrained(folder)(text, return_tensors="pt")
    with torch.inference_mode():
        states = AutoModel.from_pretrained(folder).eval()(**tokens).last_hidden_state[0]
    return torch.nn.functional.normalize(states.mean(0), dim=0)


def test_embeddings_are_unit_vectors_and_padding_never_changes_one(tiny_encoder):
    texts = ["dog", "a red circle on the table", "cat", "a dog"]
    # batches of two: "dog" and "a dog" are padded to their longer neighbours
    vectors = TextEmbedder(tiny_encoder, batch_size=2).embed(texts)
    assert tuple(vectors.shape) == (4, 16)
    assert vectors.norm(dim=-1).sub(1).abs().max() < 1e-5
    for text, vector in zip(texts, vectors):
        assert (vector - _alone(tiny_encoder, text)).abs().max() < 1e-5, text
    assert TextEmbedder(tiny_encoder).embed([]).shape[0] == 0


def test_unavailable_model_says_which_and_how(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="no-such-org/no-such-model") as error:
        TextEmbedder("no-such-org/no-such-model")
    assert "tag.embedding_model" in str(error.value)


def test_minilm_resolves_to_the_shipped_copy():
    path = resolve_model_path("minilm")
    assert os.path.isfile(os.path.join(path, "config.json"))
    assert resolve_model_path("/some/folder") == "/some/folder"
