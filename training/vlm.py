"""The embedded vision-language default: a tiny Qwen2-VL built from a config, the character-level
tokenizer with Qwen2-VL's special tokens, and a Pillow-only processor. Nothing is downloaded.

Why each setting (measured facts in the design notes): no torchvision exists here, so the processor is
Qwen2-VL's without its video processor (whose class needs torchvision), on `Qwen2VLImageProcessorPil`;
the config's special ids are set from this tokenizer (the defaults lie outside a small vocabulary);
patch 14, merge 2, temporal 2 agree between processor and vision tower; `min_pixels = max_pixels =
side**2` fixes the image-token count; `mrope_section` sums to half the head dimension; the tokenizer
pads on the left (TRL forces left padding only for processors it loads itself).
"""

from __future__ import annotations

import string
from pathlib import Path

from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor
from transformers.processing_utils import ProcessorMixin

PAD, EOS, BOS, UNK = "<pad>", "<|im_end|>", "<bos>", "<unk>"
SPECIAL = ["<|im_start|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
ALPHABET = string.digits + "+-*/=()., ?:\n" + string.ascii_letters
SIDE = 56  # pixels: 4 image tokens after the 2x2 merge of 14-pixel patches

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for b in m['content'] %}"
    "{% if b['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif b['type'] == 'text' %}{{ b['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class TinyVLProcessor(Qwen2VLProcessor):
    """Qwen2-VL's processor without a video processor: images and text only, no torchvision needed."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = "<|image_pad|>"
        self.video_token = "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


def build_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate([PAD, EOS, BOS, UNK, *SPECIAL, *ALPHABET])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # special tokens stay whole (added tokens are matched before the split); every other character is one token
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS, bos_token=BOS, unk_token=UNK,
                                   model_max_length=256, padding_side="left", extra_special_tokens=SPECIAL)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_processor(tokenizer, side: int = SIDE) -> TinyVLProcessor:
    from transformers import Qwen2VLImageProcessorPil

    ip = Qwen2VLImageProcessorPil(min_pixels=side * side, max_pixels=side * side, patch_size=14, merge_size=2,
                                  temporal_patch_size=2)
    return TinyVLProcessor(image_processor=ip, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)


def build_model(tokenizer, hidden: int = 64, layers: int = 2, heads: int = 4, vision_depth: int = 2,
                vision_dim: int = 64, seed: int = 0):
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    torch.manual_seed(seed)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL}
    head_dim = hidden // heads
    cfg = Qwen2VLConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": hidden, "intermediate_size": hidden * 2,
                     "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": heads,
                     "max_position_embeddings": 512, "tie_word_embeddings": True,
                     # M-RoPE: temporal, height, width sections of half the head dimension
                     "rope_scaling": {"type": "mrope", "mrope_section": [head_dim // 4, head_dim // 8, head_dim // 8]},
                     "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
                     "bos_token_id": tokenizer.bos_token_id},
        vision_config={"depth": vision_depth, "embed_dim": vision_dim, "hidden_size": hidden, "num_heads": 4,
                       "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "in_channels": 3},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    model = Qwen2VLForConditionalGeneration(cfg)
    g = model.generation_config
    g.pad_token_id, g.eos_token_id, g.bos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id
    return model


def save_tiny_vlm(path: str | Path, seed: int = 0, side: int = SIDE, **sizes) -> Path:
    """Write a randomly initialised tiny VLM with its processor: `load_vlm(path)` loads it back."""
    path = Path(path)
    tok = build_tokenizer()
    model = build_model(tok, seed=seed, **sizes)
    model.save_pretrained(path)
    build_processor(tok, side).save_pretrained(path)
    return path


def load_processor(path: str | Path):
    """A VLM's processor: transformers' own (AutoProcessor) where it loads, else this Pillow-only one
    (a Qwen2-VL family checkpoint on a machine without torchvision)."""
    from transformers import AutoProcessor, AutoTokenizer, Qwen2VLImageProcessorPil

    try:
        proc = AutoProcessor.from_pretrained(path)
    except Exception:  # noqa: BLE001 - a video processor that needs torchvision, or our own class
        proc = None
    if getattr(proc, "image_processor", None) is None:  # (AutoProcessor gives the bare tokenizer for ours)
        tok = AutoTokenizer.from_pretrained(path)
        proc = TinyVLProcessor(image_processor=Qwen2VLImageProcessorPil.from_pretrained(path), tokenizer=tok,
                               chat_template=tok.chat_template or CHAT_TEMPLATE)
    proc.tokenizer.padding_side = "left"  # image positions are misaligned under right padding
    return proc


def load_vlm(path: str | Path):
    """(model, processor) for a VLM id or folder: Qwen2-VL, Qwen2.5-VL, SmolVLM, or the tiny default."""
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(path), load_processor(path)
