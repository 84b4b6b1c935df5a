"""The fast caption engine: BLIP captioning with sampling, computed from the model's own weights.

It gives what `BlipForConditionalGeneration.generate` gives with sgpipe's seeded sampler (in float32
the same tokens; tests/models/test_blip_fast.py), without the work transformers repeats per
returned sequence:
- the vision encoder runs once per image, its attention through `scaled_dot_product_attention`;
- each decoder layer's cross-attention keys and values are computed once per image and shared by
  the image's n captions: at a decode step the n queries of an image attend to one copy
  (`num_return_sequences` keeps n copies, about 25 GiB at batch 128 for BLIP-large x10, read again
  at every step);
- the prompt runs once per image; its self-attention keys and values then go to the n rows of a
  cache preallocated for the whole caption;
- repetition penalty, min_length and the seeded sampler run inside the decode step, on the device.
  The step keeps no host-side state that depends on the tokens: nothing waits for the device
  between steps but a finished-check every few steps, and on CUDA the step can be captured once in
  a CUDA graph and replayed (`cuda_graphs=True`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from sgpipe.models.sampling import nucleus_draw, penalise_repeats, row_keys

if TYPE_CHECKING:
    from sgpipe.models.captioner import Decoding

log = logging.getLogger(__name__)

CHECK_EVERY = 4  # decode steps between finished-checks (each one waits for the device)

# Generation-config options that add a logits processor before the sampler (or, num_beams, turn
# sampling into beam sampling): the fast engine does not implement them, so a checkpoint that sets
# one captions with transformers' generate.
_PROCESSOR_OPTIONS = {
    "num_beams": (None, 1),
    "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0),
    "encoder_repetition_penalty": (None, 1.0),
    "bad_words_ids": (None,),
    "sequence_bias": (None,),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "min_new_tokens": (None, 0),
    "exponential_decay_length_penalty": (None,),
    "guidance_scale": (None, 1.0),
}


def fast_engine_problem(model: Any, decoding: "Decoding") -> str | None:
    """Why the fast engine cannot caption with `model` and `decoding`; None when it can."""
    kind = type(model).__name__
    if kind != "BlipForConditionalGeneration":
        return f"{kind} is not a BLIP captioning model"
    if decoding.strategy != "sample":
        return f"decoding {decoding.strategy!r} is not sampling"
    if not getattr(model.config.text_config, "is_decoder", True):
        return "its text model is not a decoder"
    generation = model.text_decoder.generation_config
    options = [name for name, off in _PROCESSOR_OPTIONS.items() if getattr(generation, name, None) not in off]
    if options:
        return f"its generation config sets {', '.join(sorted(options))}"
    return None


def _linear(x: torch.Tensor, layer: torch.nn.Linear) -> torch.Tensor:
    return F.linear(x, layer.weight, layer.bias)


def _norm(x: torch.Tensor, layer: torch.nn.LayerNorm) -> torch.Tensor:
    return F.layer_norm(x, layer.normalized_shape, layer.weight, layer.bias, layer.eps)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, T, H * d] -> [B, H, T, d]"""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, H, T, d] -> [B, T, H * d]"""
    return x.transpose(1, 2).flatten(2)


def encode_images(vision: Any, pixels: torch.Tensor) -> torch.Tensor:
    """BLIP's ViT: pixels [B, 3, S, S] -> patch and class features [B, 1 + patches, width]."""
    embeddings = vision.embeddings
    patch = embeddings.patch_embedding
    dtype = patch.weight.dtype
    x = F.conv2d(pixels.to(dtype), patch.weight, patch.bias, stride=patch.stride).flatten(2).transpose(1, 2)
    cls = embeddings.class_embedding.expand(x.shape[0], 1, -1).to(dtype)
    x = torch.cat([cls, x], dim=1)
    x = x + embeddings.position_embedding[:, : x.shape[1]].to(dtype)
    heads = vision.config.num_attention_heads
    for layer in vision.encoder.layers:
        attention = layer.self_attn
        q, k, v = _linear(_norm(x, layer.layer_norm1), attention.qkv).unflatten(-1, (3, heads, -1)).unbind(2)
        context = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        x = _linear(_merge_heads(context), attention.projection) + x
        mlp = layer.mlp
        x = _linear(mlp.activation_fn(_linear(_norm(x, layer.layer_norm2), mlp.fc1)), mlp.fc2) + x
    return _norm(x, vision.post_layernorm)


# an attention function: (layer index, the layer's BlipTextSelfAttention, hidden states) -> context
Attend = Callable[[int, Any, torch.Tensor], torch.Tensor]


class TextDecoder:
    """BLIP's BERT decoder with cross-attention, run from the weights of a `BlipTextLMHeadModel`."""

    def __init__(self, decoder: Any):
        self.embeddings = decoder.bert.embeddings
        self.layers = list(decoder.bert.encoder.layer)
        self.head = decoder.cls.predictions
        self.heads = decoder.config.num_attention_heads

    def embed(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Token ids [B, T] at positions [T] -> [B, T, hidden]."""
        x = self.embeddings.word_embeddings(ids) + self.embeddings.position_embeddings(positions)
        return _norm(x, self.embeddings.LayerNorm)

    def cross_keys_values(self, images: torch.Tensor, into: list | None = None) -> list:
        """Every layer's cross-attention keys and values of the image features, [B, H, S, d] each;
        with `into` (per layer, buffers of at least B images), written there one layer at a time."""
        pairs = []
        for index, layer in enumerate(self.layers):
            attention = layer.crossattention.self
            key, value = (
                _split_heads(_linear(images, part), self.heads) for part in (attention.key, attention.value)
            )
            if into is None:
                pairs.append((key.contiguous(), value.contiguous()))
            else:
                keys, values = (buffer[: images.shape[0]] for buffer in into[index])
                pairs.append((keys.copy_(key), values.copy_(value)))
        return pairs

    def run(self, x: torch.Tensor, attend_self: Attend, attend_cross: Attend) -> torch.Tensor:
        """The layers over hidden states x; the two attention functions say what each attends to."""
        for index, layer in enumerate(self.layers):
            for block, attend in ((layer.attention, attend_self), (layer.crossattention, attend_cross)):
                context = attend(index, block.self, x)
                x = _norm(_linear(context, block.output.dense) + x, block.output.LayerNorm)
            hidden = layer.intermediate.intermediate_act_fn(_linear(x, layer.intermediate.dense))
            x = _norm(_linear(hidden, layer.output.dense) + x, layer.output.LayerNorm)
        return x

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        transform = self.head.transform
        x = _norm(transform.transform_act_fn(_linear(x, transform.dense)), transform.LayerNorm)
        return _linear(x, self.head.decoder)

    def query(self, attention: Any, x: torch.Tensor) -> torch.Tensor:
        return _split_heads(_linear(x, attention.query), self.heads)

    def key_value(self, attention: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key, value = _linear(x, attention.key), _linear(x, attention.value)
        return _split_heads(key, self.heads), _split_heads(value, self.heads)


@dataclass
class DecodeState:
    """Everything a decode step reads and writes, allocated once for a whole caption.

    `ids` holds the captions, [rows, max_length]; columns not yet written hold the prompt's first
    token, so the repetition penalty can read every column (a token it already penalises once more
    changes nothing). `position` (a 0-d device tensor) is the column of the last token written.
    """

    ids: torch.Tensor
    unfinished: torch.Tensor  # [rows] bool; padding rows start finished
    keys: torch.Tensor  # [rows] sampler keys
    self_keys: list[torch.Tensor]  # per layer [rows, H, max_length, d]
    self_values: list[torch.Tensor]
    cross: list[tuple[torch.Tensor, torch.Tensor]]  # per layer, one per image [images, H, S, d]
    position: torch.Tensor

    @classmethod
    def allocate(
        cls, rows: int, max_length: int, cross: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> "DecodeState":
        """Zeroed buffers for `rows` captions, shaped after `cross` (one layer's keys give the sizes)."""
        key = cross[0][0]
        heads, width, device = key.shape[1], key.shape[3], key.device

        def cache() -> torch.Tensor:  # zeros, not empty: masked columns must hold finite numbers
            return torch.zeros(rows, heads, max_length, width, dtype=key.dtype, device=device)

        return cls(
            ids=torch.zeros(rows, max_length, dtype=torch.long, device=device),
            unfinished=torch.zeros(rows, dtype=torch.bool, device=device),
            keys=torch.zeros(rows, dtype=torch.long, device=device),
            self_keys=[cache() for _ in cross],
            self_values=[cache() for _ in cross],
            cross=cross,
            position=torch.zeros((), dtype=torch.long, device=device),
        )

    @property
    def rows(self) -> int:
        return self.ids.shape[0]


class FastBlipCaptioner:
    """Captions from a loaded `BlipForConditionalGeneration`, sampled as `decoding` says.

    `generate` returns what the transformers engine returns: token ids [images * n, length],
    image-major, prompt included, finished captions padded with the pad token. `cuda_graphs`:
    decode at static batch sizes (batches padded), the step captured in a CUDA graph on CUDA.
    """

    def __init__(self, model: Any, decoding: "Decoding", cuda_graphs: bool = False):
        self.model = model
        self.decoding = decoding
        self.decoder = TextDecoder(model.text_decoder)
        text = model.config.text_config
        self.start_token, self.pad, self.end = text.bos_token_id, text.pad_token_id, text.sep_token_id
        self.cuda_graphs = cuda_graphs
        self._graph: StepGraph | None = None

    def generate(self, pixels: torch.Tensor, prompt_ids: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        """Captions of `pixels` [B, 3, S, S] after the tokenized prompt `prompt_ids` [B, T] (the
        processor's output, unpadded), one seed per image."""
        if len(seeds) != pixels.shape[0]:
            raise ValueError(f"{pixels.shape[0]} images but {len(seeds)} seeds")
        prompt = prompt_ids[:, :-1].clone()  # as BLIP's generate: the closing [SEP] dropped ...
        prompt[:, 0] = self.start_token  # ... and [DEC] instead of [CLS]
        length, max_length = prompt.shape[1], self.decoding.max_length
        if length >= max_length:
            raise ValueError(
                f"caption max_length {max_length} leaves no token after the {length}-token prompt"
            )
        with torch.inference_mode():
            images = encode_images(self.model.vision_model, pixels)
            graph = self._graph_for(images, max_length)
            cross = self.decoder.cross_keys_values(images, into=graph.state.cross if graph else None)
            logits, prompt_cache = self._read_prompt(prompt, cross)
            state = graph.state if graph else DecodeState.allocate(self._rows(len(seeds)), max_length, cross)
            self._begin(state, prompt, prompt_cache, logits, seeds)
            steps, last = 1, max_length - length  # the first token came from the prompt's logits
            while steps < last:
                if graph:
                    graph.replay()
                else:
                    self.step(state)
                steps += 1
                if steps % CHECK_EVERY == 0 and steps < last and not state.unfinished.any():
                    break
            return self._finish(state, self._rows(len(seeds)), length, steps)

    def _rows(self, images: int) -> int:
        return images * self.decoding.num_return_sequences

    def _read_prompt(self, prompt: torch.Tensor, cross: list) -> tuple[torch.Tensor, list]:
        """The prompt through the decoder once per image: next-token logits [B, vocab] and each
        layer's self-attention keys and values [B, H, T, d]."""
        decoder, cache = self.decoder, []

        def attend_self(index: int, attention: Any, x: torch.Tensor) -> torch.Tensor:
            key, value = decoder.key_value(attention, x)
            cache.append((key, value))
            return _merge_heads(
                F.scaled_dot_product_attention(decoder.query(attention, x), key, value, is_causal=True)
            )

        def attend_cross(index: int, attention: Any, x: torch.Tensor) -> torch.Tensor:
            key, value = cross[index]
            return _merge_heads(F.scaled_dot_product_attention(decoder.query(attention, x), key, value))

        positions = torch.arange(prompt.shape[1], device=prompt.device)
        x = decoder.run(decoder.embed(prompt, positions), attend_self, attend_cross)
        return decoder.logits(x[:, -1]), cache

    def _begin(
        self,
        state: DecodeState,
        prompt: torch.Tensor,
        prompt_cache: list,
        logits: torch.Tensor,
        seeds: list[int],
    ) -> None:
        """Fill the state for a new batch (rows past the batch's are padding) and draw the first token."""
        n, length = self.decoding.num_return_sequences, prompt.shape[1]
        rows = len(seeds) * n
        state.ids.fill_(self.start_token)
        state.ids[:rows, :length] = prompt.repeat_interleave(n, dim=0)
        for keys, values, (key, value) in zip(state.self_keys, state.self_values, prompt_cache):
            keys[:rows, :, :length] = key.repeat_interleave(n, dim=0)
            values[:rows, :, :length] = value.repeat_interleave(n, dim=0)
        state.keys.zero_()
        state.keys[:rows] = row_keys(seeds, n).to(state.keys.device)
        state.unfinished.zero_()
        state.unfinished[:rows] = True
        state.position.fill_(length - 1)
        first = logits.repeat_interleave(n, dim=0)
        self._choose(state, F.pad(first, (0, 0, 0, state.rows - rows)))

    def step(self, state: DecodeState) -> None:
        """Feed each row's last token, draw the next one: shapes fixed, no host sync (graph-safe)."""
        decoder, n, rows = self.decoder, self.decoding.num_return_sequences, state.rows
        column = state.position.view(1)
        visible = (torch.arange(state.ids.shape[1], device=column.device) <= state.position).view(1, 1, 1, -1)

        def attend_self(index: int, attention: Any, x: torch.Tensor) -> torch.Tensor:
            key, value = decoder.key_value(attention, x)
            keys, values = state.self_keys[index], state.self_values[index]
            keys.index_copy_(2, column, key)
            values.index_copy_(2, column, value)
            query = decoder.query(attention, x)
            return _merge_heads(F.scaled_dot_product_attention(query, keys, values, attn_mask=visible))

        def attend_cross(index: int, attention: Any, x: torch.Tensor) -> torch.Tensor:
            key, value = state.cross[index]
            # an image's n rows are n queries against its one copy of the keys and values
            query = _linear(x, attention.query).view(key.shape[0], n, decoder.heads, -1).transpose(1, 2)
            return F.scaled_dot_product_attention(query, key, value).transpose(1, 2).reshape(rows, 1, -1)

        tokens = state.ids.gather(1, state.position.expand(rows, 1))
        x = decoder.run(decoder.embed(tokens, column), attend_self, attend_cross)
        self._choose(state, decoder.logits(x[:, -1]))

    def _choose(self, state: DecodeState, logits: torch.Tensor) -> None:
        """Repetition penalty, min_length, the seeded draw; write the token after `position`."""
        settings = self.decoding
        length = state.position + 1  # tokens so far, prompt included, as transformers counts them
        scores = logits.float()
        if settings.repetition_penalty != 1.0:
            scores = penalise_repeats(scores, state.ids, settings.repetition_penalty)
        if settings.min_length > 0:
            end = scores[:, self.end]
            scores[:, self.end] = torch.where(length < settings.min_length, float("-inf"), end)
        drawn = nucleus_draw(state.keys, length, scores, settings.top_p, settings.top_k)
        token = torch.where(state.unfinished, drawn, self.pad)
        state.ids.index_copy_(1, length.view(1), token[:, None])
        state.unfinished &= token != self.end
        state.position += 1

    def _finish(self, state: DecodeState, rows: int, prompt_length: int, steps: int) -> torch.Tensor:
        """The batch's rows, cut after the last step any of them needed (transformers stops there)."""
        ended = state.ids[:rows, prompt_length : prompt_length + steps].eq(self.end)
        needed = torch.where(ended.any(dim=1), ended.int().argmax(dim=1) + 1, steps)
        return state.ids[:rows, : prompt_length + int(needed.max())].clone()

    def _graph_for(self, images: torch.Tensor, max_length: int) -> StepGraph | None:
        """The captured step for this batch of image features, when CUDA graphs are on: batches up
        to the graph's size are padded to it (rows that start finished); a larger batch is captured
        anew, at the next multiple of 8; one under half the graph's size runs eagerly."""
        count = images.shape[0]
        if not self.cuda_graphs:
            return None
        graph = self._graph
        if graph is not None and graph.images >= count:
            return graph if count > graph.images // 2 else None
        self._graph = None  # free the old graph's buffers before capturing a larger one
        capacity = -(-count // 8) * 8
        heads = self.decoder.heads
        shape = (
            capacity,
            heads,
            images.shape[1],
            self.decoder.embeddings.word_embeddings.embedding_dim // heads,
        )
        buffers = [(images.new_zeros(shape), images.new_zeros(shape)) for _ in self.decoder.layers]
        state = DecodeState.allocate(self._rows(capacity), max_length, buffers)
        state.ids.fill_(self.start_token)
        self._graph = StepGraph(self.step, state, capacity)
        log.info("caption decode step for batches of %d images: %s", capacity, self._graph.mode)
        return self._graph


class StepGraph:
    """The decode step over a static `DecodeState` of a fixed number of images: captured once in a
    CUDA graph and replayed on CUDA; elsewhere called as it is (the same padded path, which the
    tests run on a CPU)."""

    def __init__(self, step: Callable[[DecodeState], None], state: DecodeState, images: int):
        self.state = state
        self.images = images
        self.graph = None
        if state.ids.device.type != "cuda":
            self.mode, self.replay = "static shapes, eager", lambda: step(state)
            return
        self.mode, self.graph = "CUDA graph", torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up off the capture: cuBLAS handles, allocator pools
            for _ in range(2):
                state.position.zero_()
                step(state)
        torch.cuda.current_stream().wait_stream(stream)
        state.position.zero_()
        with torch.cuda.graph(self.graph):
            step(state)
        self.replay = self.graph.replay
