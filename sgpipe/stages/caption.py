"""Caption stage: each ok sample's decoded image -> N model captions (RLIPv2's decoding by default)."""

from __future__ import annotations

import hashlib
from typing import Any

from sgpipe import errors
from sgpipe.config import CaptionConfig
from sgpipe.models.captioner import Captioner, Decoding
from sgpipe.records import Caption, Sample
from sgpipe.stages.base import Resources, Stage


def image_seed(seed: int, key: str) -> int:
    """A 63-bit seed from the run seed and the sample key; stable across processes (unlike hash())."""
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & ((1 << 63) - 1)


class CaptionStage(Stage):
    name = "caption"
    failure_status = errors.FAILED_CAPTION

    def __init__(self, config: CaptionConfig, device: str = "auto", seed: int = 0, gpus: float = 0.0):
        super().__init__(config.batch_size, Resources(cpus=1.0, gpus=gpus))
        self.config = config
        self.device = device
        self.seed = seed
        self.decoding = Decoding.from_config(config)
        self.captioner: Captioner | None = None
        self._loaded_description: dict[str, Any] | None = None

    def setup(self) -> None:
        self.captioner = Captioner.from_config(self.config, device=self.device).load()

    def teardown(self) -> None:
        if self.captioner is not None:  # describe() keeps answering with the loaded model's record
            self._loaded_description = self.captioner.describe()
        self.captioner = None

    def describe(self) -> dict[str, Any]:
        if self.captioner is not None:
            return self.captioner.describe()
        if self._loaded_description is not None:
            return self._loaded_description
        return {
            "model": self.config.model,
            "revision": None,
            "engine": self.config.engine,
            "decoding": self.decoding.to_dict(),
        }

    def process(self, samples: list[Sample]) -> None:
        assert self.captioner is not None, "setup() loads the captioner"
        todo = [s for s in samples if s.image is not None]
        if not todo:
            return
        texts = self.captioner.generate([s.image for s in todo], [image_seed(self.seed, s.key) for s in todo])
        settings = self.decoding.to_dict()
        settings["seed"] = self.seed  # per image: derived from (seed, key), see image_seed
        for sample, captions in zip(todo, texts):
            next_id = max((c.id for c in sample.captions), default=-1) + 1
            for offset, text in enumerate(captions):
                # all N are kept, duplicates included: the parse stage merges them with a support count
                sample.captions.append(
                    Caption(
                        id=next_id + offset,
                        text=text,
                        source="model",
                        model=self.config.model,
                        decoding=dict(settings),
                    )
                )
            sample.count("captions_generated", len(captions))
