"""What the OpenRLHF tests share: the CPU set-up of the real upstream code, a minimal launcher command line,
and a tokenizer with a chat template.

vLLM, OpenRLHF, DeepSpeed and Ray are the real packages (``scripts/setup_env.sh``). The one stand-in is the
package's placeholder for flash-attn's compiled CUDA kernels, ``flash_attn_2_cuda``
(``asym_openrlhf/integration/kernel_placeholder.py``): ``install()`` puts it in place only where the real
module is missing, and says so.
"""

from __future__ import annotations

from asym_openrlhf.integration.kernel_placeholder import install  # noqa: F401  (tests call it)

# The smallest command line the launcher accepts without reading any file: each test adds what it checks.
LAUNCH_ARGV = [
    "--rollout.n_samples_per_prompt",
    "8",
    "--algo.kl.init_coef",
    "0",
    "--reward.remote_url",
    "reward.py",
    "--actor.model_name_or_path",
    "model",
    "--data.prompt_dataset",
    "data.jsonl",
]


def tiny_chat_tokenizer(folder) -> str:
    """Save a character-level tokenizer with a chat template to ``folder`` (a stand-in for a real model's
    tokenizer: nothing can be downloaded here); return the folder as a string."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<pad>", "<eos>"]
    characters = [chr(code) for code in range(32, 127)] + ["\n"]
    vocab = {token: index for index, token in enumerate(specials + characters)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>"
    )
    tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% if enable_thinking is defined and not enable_thinking %}"
        "<think></think>{% endif %}{% endif %}"
    )
    tokenizer.save_pretrained(str(folder))
    return str(folder)
