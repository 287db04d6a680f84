"""The embedded default: a character-level tokenizer and a tiny Qwen2 built from a config.

Nothing is downloaded: the tokenizer is a `tokenizers` WordLevel model over a fixed alphabet, wrapped
in PreTrainedTokenizerFast, and the model is `Qwen2ForCausalLM(Qwen2Config(...))` with random weights.
Saved with `save_pretrained`, both load back through the ordinary `from_pretrained` path, so the
training code has one model-loading path for tiny models, Hub ids and local checkpoints alike.
"""

from __future__ import annotations

import string
from pathlib import Path

PAD, EOS, BOS, UNK = "<pad>", "<eos>", "<bos>", "<unk>"
ALPHABET = string.digits + "+-*/=()., ?:" + string.ascii_letters


def build_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate([PAD, EOS, BOS, UNK, *ALPHABET])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # One token per character, spaces included; Fuse joins tokens back without separators.
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, bos_token=BOS, unk_token=UNK,
        model_max_length=128, padding_side="left",
    )
    return fast


def build_model(tokenizer, hidden: int = 128, layers: int = 2, heads: int = 4, seed: int = 0):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=128,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    model = Qwen2ForCausalLM(cfg)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def save_tiny(path: str | Path, hidden: int = 128, layers: int = 2, heads: int = 4, seed: int = 0) -> Path:
    """Write a randomly initialised tiny model + tokenizer that `from_pretrained(path)` loads."""
    path = Path(path)
    tok = build_tokenizer()
    model = build_model(tok, hidden, layers, heads, seed)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
