"""Image captioner: any transformers image-to-text model, with RLIPv2's decoding as the default.

Needs only torch, transformers and PIL (the GPU benchmark imports it on machines without the rest).

Lengths. `max_length`/`min_length` count tokens as BLIP does, prompt included: BLIP's `generate`
turns the tokenized prompt "[CLS] a picture of [SEP]" into the decoder input "[DEC] a picture of"
(4 tokens) and hands `max_length`/`min_length` to the text decoder's `generate`, where transformers
counts the whole sequence. So max_length 20 leaves 16 new tokens (the closing [SEP] included) and
min_length 5 forbids [SEP] before the first new word, exactly as the original BLIP code did.

Sampling. RLIPv2 sampled with transformers' defaults, so top-k 50 applied before top-p 0.9; the same
holds here, drawn by sgpipe's seeded sampler (`sgpipe.models.sampling`): an image's captions depend
only on its seed and its own logits, whatever else is in the batch and on any device, up to
floating-point differences in the logits themselves (different batch sizes may pick different GPU
kernels); the same batch on the same hardware and software is bitwise reproducible.

Engines. `transformers` runs the model's own `generate`, the reference. `fast` (BLIP captioning
models sampling; `sgpipe.models.blip_fast`) computes the same captions from the same weights without
the work `generate` repeats for each of an image's N captions; in float32 its captions equal the
reference's token for token. Any other model, or beam search, runs on `transformers`, with one
logged line saying why.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sgpipe.models.device import resolve_device, resolve_dtype
from sgpipe.models.loading import load_pretrained
from sgpipe.models.sampling import TOP_K, SeededNucleusSampler, row_keys

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from sgpipe.config import CaptionConfig

log = logging.getLogger(__name__)

ENGINES = ("fast", "transformers")


@dataclass(frozen=True)
class Decoding:
    """Decoding settings, recorded with every caption."""

    strategy: str = "sample"  # sample | beam
    prompt: str = "a picture of "
    num_return_sequences: int = 10
    max_length: int = 20  # tokens as BLIP counts them, prompt included
    min_length: int = 5
    top_p: float = 0.9
    top_k: int = TOP_K
    repetition_penalty: float = 1.1
    num_beams: int = 3

    def to_dict(self) -> dict[str, Any]:
        settings = asdict(self)
        if self.strategy == "sample":
            settings.pop("num_beams")
        else:
            settings.pop("top_p")
            settings.pop("top_k")
            settings["num_beams"] = max(self.num_beams, self.num_return_sequences)
        return settings

    @classmethod
    def from_config(cls, config: "CaptionConfig") -> "Decoding":
        return cls(
            strategy=config.decoding,
            prompt=config.prompt,
            num_return_sequences=config.captions_per_image,
            max_length=config.max_length,
            min_length=config.min_length,
            top_p=config.top_p,
            repetition_penalty=config.repetition_penalty,
            num_beams=config.num_beams,
        )


class Captioner:
    """Processor and model loaded once; `generate` turns a batch of images into N captions each."""

    role = "caption"

    def __init__(
        self,
        model: str,
        decoding: Decoding,
        device: str = "auto",
        dtype: str = "auto",
        image_size: int = 0,
        trust_remote_code: bool = False,
        engine: str = "fast",
        cuda_graphs: bool = False,
    ):
        if engine not in ENGINES:
            raise ValueError(f"caption engine {engine!r} is not one of {', '.join(ENGINES)}")
        self.model_id = model
        self.decoding = decoding
        self.engine = engine
        self.cuda_graphs = cuda_graphs
        self._fast: tuple[Any, Any] | None = None  # (the model it was built for, the fast engine or None)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.image_size = image_size
        self.trust_remote_code = trust_remote_code
        self.revision: str | None = None
        self.processor: Any = None
        self.model: Any = None

    @classmethod
    def from_config(cls, config: "CaptionConfig", device: str = "auto") -> "Captioner":
        return cls(
            config.model,
            Decoding.from_config(config),
            device=device,
            dtype=config.dtype,
            image_size=config.image_size,
            trust_remote_code=config.trust_remote_code,
            engine=config.engine,
        )

    def load(self) -> "Captioner":
        """Load processor and weights: a local folder, else the Hugging Face cache, else the hub.

        A model found in none of them raises ModelNotAvailableError at once, before any work.
        """
        load_pretrained(self.model_id, self.role, self._from_pretrained)
        self.model.to(self.device).eval()
        self.revision = getattr(self.model.config, "_commit_hash", None)
        self._fit_image_size()
        return self

    def _from_pretrained(self, source: str, **options: Any) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        options["trust_remote_code"] = self.trust_remote_code
        self.processor = AutoProcessor.from_pretrained(source, **options)
        self.model = AutoModelForImageTextToText.from_pretrained(source, dtype=self.dtype, **options)

    def _fit_image_size(self) -> None:
        """Resize inputs to `image_size` (384 for RLIPv2) when the processor takes a height/width size.

        A model built for another size (position embeddings of a fixed grid) keeps its own: feeding
        it other sizes would fail every batch, so the setting gives way, with a warning.
        """
        image_processor = getattr(self.processor, "image_processor", None)
        size = getattr(image_processor, "size", None)
        height = size.get("height") if isinstance(size, dict) else getattr(size, "height", None)
        if not self.image_size or height is None:
            return
        native = getattr(getattr(self.model.config, "vision_config", None), "image_size", None)
        wanted = self.image_size
        if native is not None and native != wanted:
            log.warning(
                "caption.image_size %d ignored: the model %r takes %d px images",
                wanted,
                self.model_id,
                native,
            )
            wanted = native
        if height != wanted:
            fields = {"height": wanted, "width": wanted}
            image_processor.size = fields if isinstance(size, dict) else type(size)(**fields)
        self.image_size = wanted

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "revision": self.revision,
            "dtype": str(self.dtype).removeprefix("torch."),
            "image_size": self.image_size,
            "engine": self.engine_in_use(),
            "decoding": self.decoding.to_dict(),
        }

    def engine_in_use(self) -> str:
        """The engine that captions: `engine`, unless the fast one cannot run this model."""
        if self.engine == "fast" and self.model is not None and self._fast_engine() is None:
            return "transformers"
        return self.engine

    def _fast_engine(self) -> Any:
        """The fast engine for the current model, built once per model; None where it cannot run."""
        if self._fast is None or self._fast[0] is not self.model:
            from sgpipe.models.blip_fast import FastBlipCaptioner, fast_engine_problem

            engine = None
            if self.engine == "fast":
                problem = fast_engine_problem(self.model, self.decoding)
                if problem is None:
                    engine = FastBlipCaptioner(self.model, self.decoding, cuda_graphs=self.cuda_graphs)
                else:
                    log.warning(
                        "caption.engine fast cannot run %r (%s): using transformers", self.model_id, problem
                    )
            self._fast = (self.model, engine)
        return self._fast[1]

    def generate(self, images: list["Image.Image"], seeds: list[int]) -> list[list[str]]:
        """N captions per image (prompt stripped); sampling is seeded per image by `seeds`."""
        if not images:
            return []
        sequences = self.generate_ids(images, seeds)
        texts = self.processor.batch_decode(sequences, skip_special_tokens=True)
        captions = [strip_prompt(text, self.decoding.prompt) for text in texts]
        n = self.decoding.num_return_sequences
        return [captions[i * n : (i + 1) * n] for i in range(len(images))]

    def generate_ids(self, images: list["Image.Image"], seeds: list[int]) -> "torch.Tensor":
        """Token ids, (len(images) * N, length), prompt included, image-major."""
        if len(images) != len(seeds):
            raise ValueError(f"{len(images)} images but {len(seeds)} seeds")
        if self.model is None:
            self.load()
        return self.generate_from_inputs(self.preprocess(images), seeds)

    def preprocess(self, images: list["Image.Image"]) -> dict[str, "torch.Tensor"]:
        """Model inputs (pixels and the tokenized prompt) on the model's device and dtype.

        For BLIP the pixels are resized and normalised on the device (`sgpipe.models.pixels`),
        which costs the host a fraction of what the processor does (docs/BENCHMARKS.md); other
        models go through their own processor."""
        recipe = device_pixel_recipe(self.processor)
        if recipe is None:
            inputs = self.processor(
                images=images, text=[self.decoding.prompt] * len(images), return_tensors="pt"
            )
        else:
            inputs = self.processor(text=[self.decoding.prompt] * len(images), return_tensors="pt")
        inputs = {name: value.to(self.device) for name, value in inputs.items()}
        if recipe is not None:
            from sgpipe.models.pixels import resize_batch, to_tensor

            resized = resize_batch(
                [to_tensor(image) for image in images], recipe.size, recipe.mode, self.device
            )
            inputs["pixel_values"] = recipe.apply(resized, self.dtype)
        elif "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        return inputs

    def generate_from_inputs(self, inputs: dict[str, "torch.Tensor"], seeds: list[int]) -> "torch.Tensor":
        """Decode from prepared inputs, one seed per image (the GPU benchmark times this part)."""
        import torch
        from transformers import LogitsProcessorList

        fast = self._fast_engine()
        if fast is not None:
            return fast.generate(inputs["pixel_values"], inputs["input_ids"], seeds)
        settings = self.decoding
        n = settings.num_return_sequences
        options: dict[str, Any] = {
            "max_length": settings.max_length,
            "min_length": settings.min_length,
            "repetition_penalty": settings.repetition_penalty,
            "num_return_sequences": n,
        }
        if settings.strategy == "beam":
            options.update(do_sample=False, num_beams=max(settings.num_beams, n))
        else:
            sampler = SeededNucleusSampler(row_keys(seeds, n), settings.top_p, settings.top_k)
            # transformers' own warpers off: the sampler has already reduced each row to one token
            options.update(do_sample=True, top_k=0, top_p=1.0, temperature=1.0)
            options["logits_processor"] = LogitsProcessorList([sampler])
        with torch.inference_mode():
            return self.model.generate(**inputs, **options)


@dataclass(frozen=True)
class DevicePixelRecipe:
    """What a BLIP image processor does, redone on the device: squash-resize, rescale, normalise."""

    size: tuple[int, int]
    mode: str
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def apply(self, pixels: "torch.Tensor", dtype: "torch.dtype") -> "torch.Tensor":
        from sgpipe.models.pixels import normalise

        return normalise(pixels, self.scale, self.mean, self.std, dtype)


_RESAMPLE_MODES = {2: "bilinear", 3: "bicubic"}  # PIL's BILINEAR, BICUBIC


def _resample_mode(resample: Any) -> str | None:
    """PIL's resampling code, or an enum named after the filter (torchvision's) -> a torch mode."""
    try:
        return _RESAMPLE_MODES.get(int(resample))
    except (TypeError, ValueError):
        name = str(getattr(resample, "value", resample)).lower()
        return name if name in ("bilinear", "bicubic") else None


def device_pixel_recipe(processor: Any) -> DevicePixelRecipe | None:
    """The recipe of a `BlipProcessor` whose image processor only resizes, rescales and
    normalises; None for anything else (crops, padding, other processors keep their own path)."""
    images = getattr(processor, "image_processor", None)
    if type(processor).__name__ != "BlipProcessor" or images is None:
        return None
    size = getattr(images, "size", None)
    height = size.get("height") if isinstance(size, dict) else getattr(size, "height", None)
    width = size.get("width") if isinstance(size, dict) else getattr(size, "width", None)
    mode = _resample_mode(getattr(images, "resample", None))
    if (
        not getattr(images, "do_resize", False)
        or not height
        or not width
        or mode is None
        or getattr(images, "do_center_crop", None)
        or getattr(images, "do_pad", None)
    ):
        return None
    scale = float(images.rescale_factor) if getattr(images, "do_rescale", False) else 1.0
    if getattr(images, "do_normalize", False):
        mean, std = tuple(images.image_mean), tuple(images.image_std)
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    return DevicePixelRecipe((int(height), int(width)), mode, scale, mean, std)


def strip_prompt(text: str, prompt: str) -> str:
    """Drop the prompt the decoder echoes back (BLIP returns "a picture of a dog ...")."""
    text = text.strip()
    head = prompt.strip()
    if head and text.lower().startswith(head.lower()):
        text = text[len(head) :]
    return text.strip()
