"""A tiny random Qwen2 model with a character-level tokenizer, built locally (no download), for smoke runs
and tests of the generation backends: ``build_tiny_model(folder)``.

Head size 32 because vLLM's CPU attention kernels do not take every head size.
"""

from __future__ import annotations

import string
from pathlib import Path

EMBEDDING_SCALE = 10.0
SPECIAL_TOKENS = ["<pad>", "<eos>", "<unk>"]
# A Jinja chat template so ``--prompt_format chat`` works on the tiny model too.
CHAT_TEMPLATE = (
    "{% for message in messages %}<{{ message['role'] }}>{{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def build_tiny_model(
    folder: str | Path,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    max_position_embeddings: int = 4096,
) -> Path:
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    folder = Path(folder)
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + list(string.printable))}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    fast.chat_template = CHAT_TEMPLATE
    config = Qwen2Config(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=hidden_size // 32,
        num_key_value_heads=1,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=vocab["<eos>"],
        pad_token_id=vocab["<pad>"],
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    # Untied, sharpened output layer: varied text (a tied one repeats one character) with clearer greedy choices.
    with torch.no_grad():
        model.lm_head.weight.mul_(EMBEDDING_SCALE)
    model.generation_config.eos_token_id = vocab["<eos>"]
    model.generation_config.pad_token_id = vocab["<pad>"]
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder
