"""RTaggerNet: RLIPv2's R-Tagger network (`RLIP_ParSeD` + `RLIP_ParSeDTransformer_v2` with `--verb_tagger`)
under RLIPv2's own state-dict key names, batched over images of different sizes.

Flow: backbone (ResNet-50 or Swin) stages 2-4 plus a stride-2 extra level, each projected to 256 (per image,
unpadded, so group norm and convolutions see exactly the image alone) -> levels zero-padded to a common size
-> fusion encoder with each image's own texts -> per candidate group ("row", at most num_queries // 2 pairs): subject and
object queries from the given boxes and the fused text of their class -> pair decoder -> verb decoder (its
content the learned verb queries, plus a multi-branch fusion of each pair's subject and object outputs with
`vanilla_MBF`) -> verb logit of every pair against every text of the row's image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import RobertaConfig, RobertaModel

from .backbone import ResNet50Body, sine_position
from .config import RTaggerConfig
from .decoder import MLP, MultiBranchFusion, PairDecoder, VerbDecoder, inverse_sigmoid
from .encoder import FusionEncoder
from .precision import full_precision
from .swin import SwinBody

BIAS_C = -math.log((1 - 0.01) / 0.01)  # the focal-loss prior RLIPv2 adds to every logit


@dataclass
class Encoded:
    memory: torch.Tensor  # [N, S, C]
    padding: torch.Tensor  # [N, S] True on padding
    shapes: list[tuple[int, int]]
    shapes_tensor: torch.Tensor
    valid_ratios: torch.Tensor  # [N, levels, 2]
    texts: torch.Tensor  # [N, T, C]: the last fused text layer, resized


@dataclass
class Rows:
    """Candidate groups to decode; row r belongs to image `image[r]` and holds `valid[r].sum()` pairs."""

    image: torch.Tensor  # [R] long
    sub_boxes: torch.Tensor  # [R, P, 4] cxcywh normalised by the resized image
    obj_boxes: torch.Tensor
    sub_labels: torch.Tensor  # [R, P] long, indices of the image's texts
    obj_labels: torch.Tensor
    valid: torch.Tensor  # [R, P] bool


class _Backbone(nn.Module):
    def __init__(self, config: RTaggerConfig):
        super().__init__()
        self.body = SwinBody(config.swin) if config.swin is not None else ResNet50Body()


class _Resizer(nn.Module):
    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.fc = nn.Linear(d_in, d_out)
        self.layer_norm = nn.LayerNorm(d_out, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(self.fc(x))


class _Transformer(nn.Module):
    def __init__(self, config: RTaggerConfig):
        super().__init__()
        d = config.hidden_dim
        self.level_embed = nn.Parameter(torch.zeros(config.num_feature_levels, d))
        self.ho_encoder = FusionEncoder(config)
        self.ho_decoder = PairDecoder(config)
        self.verb_decoder = VerbDecoder(config)
        self.reference_points_sub = nn.Linear(d, 2)
        self.reference_points_obj = nn.Linear(d, 2)
        text_config = RobertaConfig(**config.text)
        self.text_encoder = RobertaModel(text_config, add_pooling_layer=True)
        self.resizer = _Resizer(config.text["hidden_size"], d)
        self.coord_proj = nn.Linear(4, d)
        self.verb_tgt = nn.Embedding(config.num_queries, d)
        if config.verb_query_tgt_type == "vanilla_MBF":
            self.verb_tgt_generator = MultiBranchFusion(d, cardinality=16)
            self.verb_query_embed = nn.Embedding(config.num_pairs, d)


class RTaggerNet(nn.Module):
    def __init__(self, config: RTaggerConfig):
        super().__init__()
        config.validate()
        self.config = config
        d = config.hidden_dim
        self.transformer = _Transformer(config)
        self.backbone = nn.ModuleList([_Backbone(config)])
        channels = self.backbone[0].body.num_channels
        projections = [nn.Sequential(nn.Conv2d(c, d, 1), nn.GroupNorm(32, d)) for c in channels]
        projections.append(nn.Sequential(nn.Conv2d(channels[-1], d, 3, stride=2, padding=1), nn.GroupNorm(32, d)))
        self.input_proj = nn.ModuleList(projections)
        self.query_embed = nn.Embedding(config.num_queries, 3 * d)  # only its size is used (RLIPv2 keeps it)
        self.sub_bbox_embed = nn.ModuleList(MLP(d, d, 4, 3) for _ in range(2 * config.dec_layers))
        self.obj_bbox_embed = nn.ModuleList(MLP(d, d, 4, 3) for _ in range(2 * config.dec_layers))
        self.projection_text = nn.Linear(d, d)
        self.bias_obj_a = nn.Parameter(torch.zeros(d))
        self.bias_pred_a = nn.Parameter(torch.zeros(d))

    @classmethod
    def without_init(cls, config: RTaggerConfig) -> RTaggerNet:
        """The network with uninitialised weights (no random init of 200M values), for loading or filling."""
        with torch.device("meta"):
            net = cls(config)
        net = net.to_empty(device="cpu")
        embeddings = net.transformer.text_encoder.embeddings
        with torch.no_grad():  # the text encoder's two integer buffers are not weights: rebuild them
            embeddings.position_ids.copy_(torch.arange(embeddings.position_ids.shape[-1]).expand_as(embeddings.position_ids))
            embeddings.token_type_ids.zero_()
        return net

    # -- text --------------------------------------------------------------------------------------------
    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """RoBERTa pooler output of each tokenised text -> [texts, 768], in fp32 under autocast."""
        with full_precision(input_ids):
            return self.transformer.text_encoder(input_ids=input_ids, attention_mask=attention_mask).pooler_output

    # -- image -------------------------------------------------------------------------------------------
    def image_levels(self, pixels: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        """Per image, its 4 projected feature maps [C, h, w]; images of one size share a backbone call."""
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(pixels):
            by_size.setdefault(tuple(image.shape[-2:]), []).append(index)
        levels: list[list[torch.Tensor]] = [[] for _ in pixels]
        for indices in by_size.values():
            features = self.backbone[0].body(torch.stack([pixels[i] for i in indices]))
            projected = [proj(feature) for proj, feature in zip(self.input_proj, features)]
            projected.append(self.input_proj[3](features[-1]))
            for slot, index in enumerate(indices):
                levels[index] = [level[slot] for level in projected]
        return levels

    def encode(self, levels: list[list[torch.Tensor]], lang: torch.Tensor, lang_valid: torch.Tensor) -> Encoded:
        d = self.config.hidden_dim
        n = len(levels)
        device = lang.device
        srcs, poss, pads, shapes, ratios = [], [], [], [], []
        for level in range(self.config.num_feature_levels):
            sizes = [tuple(image[level].shape[-2:]) for image in levels]
            height, width = max(s[0] for s in sizes), max(s[1] for s in sizes)
            src = levels[0][level].new_zeros(n, d, height, width)
            pos = torch.zeros(n, d, height, width, device=device)
            pad = torch.ones(n, height, width, dtype=torch.bool, device=device)
            for i, (h, w) in enumerate(sizes):
                src[i, :, :h, :w] = levels[i][level]
                pos[i, :, :h, :w] = sine_position(h, w, d // 2, device, self.config.sine_offset)
                pad[i, :h, :w] = False
            ratios.append(torch.stack([(~pad[:, 0, :]).sum(1).float() / width, (~pad[:, :, 0]).sum(1).float() / height], -1))
            srcs.append(src.flatten(2).transpose(1, 2))
            poss.append(pos.flatten(2).transpose(1, 2) + self.transformer.level_embed[level].view(1, 1, -1))
            pads.append(pad.flatten(1))
            shapes.append((height, width))
        src, pos, padding = torch.cat(srcs, 1), torch.cat(poss, 1), torch.cat(pads, 1)
        shapes_tensor = torch.as_tensor(shapes, dtype=torch.long, device=device)
        last_start = sum(h * w for h, w in shapes[:-1])
        valid_ratios = torch.stack(ratios, 1)
        memory, texts = self.transformer.ho_encoder(
            src, pos, padding, shapes, shapes_tensor, last_start, valid_ratios, lang, lang_valid
        )
        with full_precision(texts):
            resized = self.transformer.resizer(texts[-1].float())
        return Encoded(memory, padding, shapes, shapes_tensor, valid_ratios, resized)

    # -- decoding ----------------------------------------------------------------------------------------
    def verb_logits(self, enc: Encoded, rows: Rows) -> torch.Tensor:
        """-> [R, P, T]: each pair of each row against every text of its image; fp32 under autocast (the
        decoders see a few hundred queries: their cost is small beside the encoder's)."""
        with full_precision(enc.memory):
            return self._verb_logits(Encoded(enc.memory.float(), enc.padding, enc.shapes, enc.shapes_tensor,
                                             enc.valid_ratios, enc.texts.float()), rows)

    def _verb_logits(self, enc: Encoded, rows: Rows) -> torch.Tensor:
        t = self.transformer
        label_text = enc.texts[rows.image]  # [R, T, C]
        gather = lambda labels: torch.gather(label_text, 1, labels[..., None].expand(-1, -1, label_text.shape[-1]))
        query_pos = torch.cat([t.coord_proj(inverse_sigmoid(rows.sub_boxes)), t.coord_proj(inverse_sigmoid(rows.obj_boxes))], 1)
        tgt = torch.cat([gather(rows.sub_labels), gather(rows.obj_labels)], 1)
        valid = torch.cat([rows.valid, rows.valid], 1)
        query_pos = query_pos * valid[..., None]
        tgt = tgt * valid[..., None]
        pairs = rows.valid.shape[1]
        sub_ref = t.reference_points_sub(query_pos[:, :pairs]).sigmoid()
        obj_ref = t.reference_points_obj(query_pos[:, pairs:]).sigmoid()
        memory, padding = enc.memory[rows.image], enc.padding[rows.image]
        ratios = enc.valid_ratios[rows.image]
        dec = self.config.dec_layers
        hs, sub_ref, obj_ref = t.ho_decoder(
            tgt, query_pos, sub_ref, obj_ref, memory, enc.shapes, enc.shapes_tensor, ratios, padding, ~valid,
            self.sub_bbox_embed[:dec], self.obj_bbox_embed[:dec],
        )
        half = self.config.num_pairs
        verb_tgt = (t.verb_tgt.weight[:pairs] + t.verb_tgt.weight[half : half + pairs]).unsqueeze(0).expand(len(hs), -1, -1)
        if self.config.verb_query_tgt_type == "vanilla_MBF":
            verb_tgt = verb_tgt + t.verb_tgt_generator(hs[:, :pairs], hs[:, pairs:])
            verb_pos = t.verb_query_embed.weight[:pairs].unsqueeze(0).expand(len(hs), -1, -1)
        else:
            verb_pos = hs[:, :pairs] + hs[:, pairs:]
        hs_verb = t.verb_decoder(
            verb_tgt, verb_pos, sub_ref, obj_ref, memory, enc.shapes, enc.shapes_tensor, ratios,
            padding, ~rows.valid, self.sub_bbox_embed[dec:], self.obj_bbox_embed[dec:],
        )
        text = self.projection_text(F.normalize(label_text, p=2, dim=-1) / 2.0)
        return torch.einsum("rpd,rtd->rpt", hs_verb + self.bias_pred_a, text) + BIAS_C
