"""The embedded default: a character-level tokenizer and a tiny Qwen2 causal LM, in three tiers.

``default``: hidden 128, 4 layers, 4 heads (2 KV), FFN 512, tied embeddings (about 1M parameters), on
addition of 1-2 digit numbers. ``quick``: hidden 64, 2 layers, one-digit addition, for tests and smoke runs.
``countdown``: the default shape, on Countdown (three numbers 1..9, many correct expressions per prompt).
Warm-start checkpoints of all three ship in ``asym_openrlhf/assets`` (built by ``scripts/build_lite_checkpoint.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
# Every character an addition prompt or answer uses, plus a few so that other short prompts do not all map
# to <unk>. The order fixes the token ids of the shipped checkpoints: append only.
CHARS = list("0123456789") + list("Q:+=A\\boxed{}") + list(" -*/().,")
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"


@dataclass(frozen=True)
class Tier:
    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    max_digits: int  # operands have 1..max_digits digits
    heldout_size: int  # prompts kept out of warm-up and RL, for eval/accuracy
    checkpoint: str  # folder under asym_openrlhf/assets
    task: str = "addition"  # what its checkpoint was warmed up on

    @property
    def checkpoint_dir(self) -> Path:
        return ASSETS_DIR / self.checkpoint


TIERS = {
    "default": Tier("default", 128, 4, 4, 2, 512, max_digits=2, heldout_size=256, checkpoint="lite_addition"),
    "quick": Tier(
        "quick", 64, 2, 4, 2, 256, max_digits=1, heldout_size=30, checkpoint="lite_addition_1digit"
    ),
    # Countdown over three numbers 1..9 (tasks.CountdownTask); the default model's shape and tokenizer: every
    # character of its prompts and expressions is already in CHARS.
    "countdown": Tier(
        "countdown",
        128,
        4,
        4,
        2,
        512,
        max_digits=1,  # its numbers are 1..9
        heldout_size=256,
        checkpoint="lite_countdown",
        task="countdown",
    ),
}


def build_tokenizer():
    """A char-level ``PreTrainedTokenizerFast``: WordLevel over single characters, Fuse decoder, no BOS."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate([PAD, EOS, UNK, *CHARS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, eos_token=EOS, unk_token=UNK)


def build_model(tier: Tier, tokenizer, seed: int):
    """A freshly initialized tiny ``Qwen2ForCausalLM`` (fp32), seeded."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=tier.hidden,
        intermediate_size=tier.ffn,
        num_hidden_layers=tier.layers,
        num_attention_heads=tier.heads,
        num_key_value_heads=tier.kv_heads,
        max_position_embeddings=64,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(config)
