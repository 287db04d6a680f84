"""A dataset row's prompt as TRL sends it to a vision-language model: the one rule the held-out
encoder and the dead-prompt history both follow, so an image prompt is generated and keyed alike."""

from __future__ import annotations

from typing import Any


def row_images(row: dict) -> list:
    """The row's images: an `images` list or a single `image` (TRL's two dataset columns)."""
    if row.get("images"):
        return list(row["images"])
    return [row["image"]] if row.get("image") is not None else []


def sent_prompt(row: dict) -> Any:
    """The prompt with its images inserted into the chat messages where TRL inserts them; a prompt
    without images (or not a chat) as it stands."""
    images = row_images(row)
    if not images or not isinstance(row["prompt"], list):
        return row["prompt"]
    from trl.data_utils import prepare_multimodal_messages

    return prepare_multimodal_messages(row["prompt"], images=images)
