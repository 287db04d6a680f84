"""Visual tasks for the tiny vision-language default: numbers drawn with Pillow, read and added.

Each row is a chat prompt with an `image` (TRL's VLM path inserts the image block) and a strict answer;
its twin in `text` form asks the same question with the numbers written out, so one model can be
evaluated on both modalities (transfer, or forgetting, across them). Difficulty buckets by the size
of the numbers. The held-out split is keyed on the numbers, so an image item never trains as its twin.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

from training.tasks.arithmetic import strict_verify

SIDE = 56
QUESTION = "Add the numbers in the image."
BUCKETS = (("1-easy", 9, 9), ("2-medium", 99, 9), ("3-hard", 99, 99))


@lru_cache(maxsize=1)
def _font(size: int):
    from PIL import ImageFont

    # Pillow's embedded scalable font (the same glyphs on every machine with this Pillow); large glyphs
    # span whole 14-pixel patches, which a two-layer vision tower can learn to read
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=4096)
def render(a: int, b: int, side: int = SIDE):
    """The two numbers in black on white, one above the other."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (side, side), "white")
    d = ImageDraw.Draw(im)
    font = _font(side * 2 // 5)
    d.text((side // 9, side // 28), str(a), fill="black", font=font)
    d.text((side // 9, side // 2), str(b), fill="black", font=font)
    return im


def _chat(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@dataclass(frozen=True)
class VisualAdd:
    """Read two numbers from an image and add them; `modality="text"` is the same item written out,
    "mixed" either at random."""

    name: str
    modality: str = "image"
    space: int = 10_000

    @property
    def bucket(self) -> str:
        return "mixed"

    def sample(self, rng: random.Random) -> dict:
        bucket, hi_a, hi_b = rng.choice(BUCKETS)
        a, b = rng.randint(0, hi_a), rng.randint(0, hi_b)
        modality = rng.choice(("image", "text")) if self.modality == "mixed" else self.modality
        return item(a, b, bucket, modality)

    def verify(self, completion: str, answer: str) -> bool:
        return strict_verify(completion, answer)


def item(a: int, b: int, bucket: str, modality: str) -> dict:
    row = {"answer": str(a + b), "bucket": bucket, "question": f"{a} {b}", "modality": modality}
    if modality == "image":
        return {**row, "prompt": _chat(QUESTION), "image": render(a, b)}
    return {**row, "prompt": _chat(f"Add the numbers: {a} {b}")}


def twin(row: dict) -> dict:
    """The same item in the other modality."""
    a, b = (int(x) for x in row["question"].split())
    return item(a, b, row["bucket"], "text" if row["modality"] == "image" else "image")


# digits-mixed: each item drawn or written at random (the shipped VLM bases learn both modalities from it)
TASKS = {"digits-image": VisualAdd("digits-image", "image"), "digits-text": VisualAdd("digits-text", "text"),
         "digits-mixed": VisualAdd("digits-mixed", "mixed")}
