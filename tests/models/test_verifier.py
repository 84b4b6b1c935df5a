import numpy as np
import pytest
import torch
from PIL import Image

from sgpipe.models.verifier import (
    Example,
    Verifier,
    VerifierConfig,
    collate,
    focal_loss,
    image_to_pixels,
    normalise_boxes,
    tiny_config,
)
from sgpipe.models.verifier.decoder import roi_sample


def _example(seed: int, n_boxes: int = 3, predicates=("on", "behind", "next to")) -> Example:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (48, 60, 3), dtype=np.uint8))
    boxes = [
        [rng.uniform(0, 30), rng.uniform(0, 20), rng.uniform(5, 30), rng.uniform(5, 28)]
        for _ in range(n_boxes)
    ]
    pairs = [(a, b) for a in range(n_boxes) for b in range(n_boxes) if a != b]
    targets = (rng.random((len(pairs), len(predicates))) < 0.3).astype(np.float32)
    return Example(
        image_to_pixels(image, 64),
        normalise_boxes(boxes, 60, 48),
        ["cat", "dog", "cup", "man"][:n_boxes],
        pairs,
        list(predicates),
        targets,
        key=f"k{seed}",
    )


@pytest.fixture(scope="module")
def model() -> Verifier:
    torch.manual_seed(0)
    return Verifier.build(tiny_config())


def test_shapes_and_padding(model):
    batch = collate([_example(0, 3), _example(1, 2, ("on",))])
    logits = model(batch)
    assert logits.shape == (2, 6, 3)
    assert (
        batch["valid"][1, :2, :1].all()
        and not batch["valid"][1, 2:].any()
        and not batch["valid"][1, :, 1:].any()
    )
    scores = model.eval().score([_example(0, 3), _example(1, 2, ("on",))])
    assert [s.shape for s in scores] == [(6, 3), (2, 1)]
    assert all(((s > 0) & (s < 1)).all() for s in scores)


def test_scores_do_not_depend_on_batch_company(model):
    model.eval()
    alone = model.score([_example(3)])[0]
    together = model.score([_example(4, 2, ("holding", "on")), _example(3)])[1]
    np.testing.assert_allclose(alone, together, atol=1e-5)


def test_gradients_reach_every_trainable_part(model):
    model.train()
    batch = collate([_example(0), _example(1)])
    model.zero_grad()
    loss = model.loss(model(batch), batch)
    loss.backward()
    for name in (
        "vision.backbone",
        "vision.proj",
        "labels.text",
        "labels.proj",
        "fusion.alif",
        "fusion.vision",
        "fusion.text",
        "decoder.roi",
        "decoder.geometry",
        "decoder.layers",
        "relation_head",
        "predicate_head",
    ):
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(name)]
        assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), name
    gates = [p for n, p in model.named_parameters() if n.endswith("_gate")]
    assert gates and all(abs(g.item() - 1 / 3) < 1e-6 for g in gates)


def test_save_load_round_trip_gives_identical_scores(model, tmp_path):
    model.eval()
    examples = [_example(5), _example(6, 2)]
    before = model.score(examples)
    folder = model.save_pretrained(tmp_path / "ckpt")
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    loaded = Verifier.from_pretrained(folder)
    assert loaded.config == model.config
    for a, b in zip(before, loaded.score(examples)):
        np.testing.assert_array_equal(a, b)


def test_frozen_text_encoder_is_cached_and_not_trained():
    model = Verifier.build(tiny_config(train_text=False)).train()
    batch = collate([_example(0)])
    model.loss(model(batch), batch).backward()
    assert all(p.grad is None for p in model.labels.text.parameters())
    assert set(model.labels._cache) == {"cat", "dog", "cup", "on", "behind", "next to"}


def test_a_cached_label_vector_does_not_depend_on_the_labels_encoded_with_it(tiny_verifier):
    """Padded beside longer labels, a label's vector moved in its last bits: a worker that had seen
    other labels first scored differently from a fresh one (a resumed run, another layout)."""
    warm, cold = (Verifier.from_pretrained(tiny_verifier, device="cpu") for _ in range(2))
    with torch.no_grad():
        warm.labels(["person", "riding a horse on the beach", "next to", "sitting on top of"])
        assert torch.equal(warm.labels(["next to", "person"]), cold.labels(["next to", "person"]))


def test_focal_loss_prefers_right_answers():
    targets = torch.tensor([[1.0, 0.0]])
    valid = torch.ones(1, 2, dtype=torch.bool)
    good = focal_loss(torch.tensor([[4.0, -4.0]]), targets, valid, 0.25, 2.0)
    bad = focal_loss(torch.tensor([[-4.0, 4.0]]), targets, valid, 0.25, 2.0)
    assert good < bad
    masked = focal_loss(torch.tensor([[4.0, 9.0]]), targets, torch.tensor([[True, False]]), 0.25, 2.0)
    assert masked < good + 1e-6


def test_roi_sample_reads_inside_the_box():
    feature = torch.zeros(1, 1, 8, 8)
    feature[..., :4, :4] = 1.0  # top-left quadrant
    inside = roi_sample(feature, torch.tensor([[[0.0, 0.0, 0.5, 0.5]]]), 2)
    outside = roi_sample(feature, torch.tensor([[[0.5, 0.5, 1.0, 1.0]]]), 2)
    assert torch.allclose(inside, torch.ones_like(inside)) and torch.allclose(
        outside, torch.zeros_like(outside)
    )


def test_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="Choose from"):
        VerifierConfig.from_dict({"d_modle": 3})
