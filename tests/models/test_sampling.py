"""The seeded sampler and the per-token rules both caption engines share."""

import pytest
import torch

from sgpipe.models.sampling import SeededNucleusSampler, nucleus_draw, penalise_repeats, row_keys


def test_sampler_follows_the_nucleus_distribution():
    # probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.9 keeps the first three, renormalised to 0.5/0.95 ...
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    rows = 20000
    scores = probs.log().repeat(rows, 1)
    sampler = SeededNucleusSampler(row_keys(list(range(rows)), 1), top_p=0.9)
    out = sampler(torch.zeros(rows, 4, dtype=torch.long), scores)
    assert torch.isfinite(out).sum(dim=1).eq(1).all()  # exactly one allowed token per row
    chosen = out.argmax(dim=1)
    freq = torch.bincount(chosen, minlength=4).float() / rows
    expected = torch.tensor([0.5, 0.3, 0.15, 0.0]) / 0.95
    assert torch.allclose(freq, expected, atol=0.015), freq


def test_sampler_respects_top_k_and_masked_tokens():
    rows = 2000
    scores = torch.zeros(rows, 100)  # uniform: top_k 50 bounds the choice
    scores[:, 0] = float("-inf")  # e.g. EOS forbidden by min_length
    sampler = SeededNucleusSampler(row_keys(list(range(rows)), 1), top_p=1.0, top_k=50)
    chosen = sampler(torch.zeros(rows, 3, dtype=torch.long), scores).argmax(dim=1)
    assert chosen.ne(0).all()
    assert len(set(chosen.tolist())) == 50


def test_sampler_noise_depends_on_row_key_and_step_only():
    scores = torch.randn(6, 40)
    keys = row_keys([11, 22, 33], 2)
    full = SeededNucleusSampler(keys, 0.9)(torch.zeros(6, 5, dtype=torch.long), scores).argmax(1)
    part = SeededNucleusSampler(keys[2:4], 0.9)(torch.zeros(2, 5, dtype=torch.long), scores[2:4]).argmax(1)
    assert torch.equal(full[2:4], part)
    later = SeededNucleusSampler(keys, 1.0, 40)(torch.zeros(6, 6, dtype=torch.long), torch.zeros(6, 40))
    earlier = SeededNucleusSampler(keys, 1.0, 40)(torch.zeros(6, 5, dtype=torch.long), torch.zeros(6, 40))
    assert not torch.equal(later.argmax(1), earlier.argmax(1))


def test_row_keys_distinct_per_image_and_return_index():
    keys = row_keys([0, 1, 2**40, 2**62 + 5], 10)
    assert keys.shape == (40,) and len(set(keys.tolist())) == 40


def test_draw_takes_the_length_as_an_int_or_a_device_scalar():
    scores, keys = torch.randn(8, 60), row_keys([5, 6], 4)
    as_int = nucleus_draw(keys, 7, scores, 0.9, 50)
    assert torch.equal(as_int, nucleus_draw(keys, torch.tensor(7), scores, 0.9, 50))
    assert not torch.equal(as_int, nucleus_draw(keys, torch.tensor(8), scores, 0.9, 50))


@pytest.mark.parametrize("penalty", [1.1, 0.7])
def test_repetition_penalty_is_transformers_own(penalty):
    from transformers import RepetitionPenaltyLogitsProcessor

    scores = torch.randn(4, 30)
    ids = torch.tensor([[1, 2, 2, 3], [0, 0, 0, 0], [29, 5, 1, 29], [7, 8, 9, 10]])
    expected = RepetitionPenaltyLogitsProcessor(penalty)(ids, scores.clone())
    assert torch.equal(penalise_repeats(scores, ids, penalty), expected)
    # a token penalised twice changes nothing more: the fast engine pads ids with a token already in them
    padded = torch.cat([ids, ids[:, :1].expand(4, 3)], dim=1)
    assert torch.equal(penalise_repeats(scores, padded, penalty), expected)
