"""CPU stand-ins for the two GPU-only modules OpenRLHF 0.11.2 imports at module level: ``vllm`` and
``flash_attn`` (or only its compiled ``flash_attn_2_cuda`` where the Python part is installed).

Tests only, never the package: ``install()`` puts a stand-in in ``sys.modules`` *only when the real module
cannot be imported*, and says so on stderr. The stand-ins let ``openrlhf.cli.train_ppo_ray``,
``openrlhf.trainer.ppo_trainer`` and ``openrlhf.trainer.ray.ppo_actor`` import; anything that would really
generate text or run a flash-attention kernel raises instead of returning a fake answer.

Run as a script, it installs the stand-ins and then runs the launcher, so that a launch script can be dry-run
on a CPU machine: ``ASYM_LAUNCHER="python tests/openrlhf_stubs.py" DRY_RUN=1 bash examples/scripts/...``.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
import uuid


def _unavailable(name: str):
    def call(*args, **kwargs):
        raise RuntimeError(f"{name} is a CPU test stand-in (tests/openrlhf_stubs.py): it cannot run here")

    return call


class _Unavailable:
    """A class that can be named, subclassed and pickled, but not constructed."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError(f"{type(self).__name__} is a CPU test stand-in (tests/openrlhf_stubs.py)")


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    module.__file__ = __file__
    # transformers probes optional packages with find_spec, which needs a spec on a module in sys.modules.
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    module.__cpu_test_stub__ = True
    return module


def _missing(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


def _vllm_modules() -> dict[str, types.ModuleType]:
    class SamplingParams:  # a plain record: the samples generator only builds and copies it
        def __init__(self, **kwargs):
            self.__dict__.update(kwargs)
            self.__dict__.setdefault("max_tokens", None)
            self.__dict__.setdefault("logprobs", None)

    unavailable = {n: type(n, (_Unavailable,), {}) for n in ("AsyncEngineArgs", "AsyncLLMEngine", "LLM")}
    vllm = _module("vllm", __version__="0.29.0", SamplingParams=SamplingParams, **unavailable)
    return {
        "vllm": vllm,
        "vllm.inputs": _module("vllm.inputs", TokensPrompt=dict),
        "vllm.utils": _module("vllm.utils", random_uuid=lambda: uuid.uuid4().hex),
    }


def _flash_attn_modules() -> dict[str, types.ModuleType]:
    names = ("index_first_axis", "pad_input", "rearrange", "unpad_input")
    return {
        "flash_attn": _module("flash_attn", __version__="2.8.3"),
        "flash_attn.bert_padding": _module(
            "flash_attn.bert_padding", **{n: _unavailable(f"flash_attn.bert_padding.{n}") for n in names}
        ),
        "flash_attn.utils": _module("flash_attn.utils"),
        "flash_attn.utils.distributed": _module(
            "flash_attn.utils.distributed", all_gather=_unavailable("flash_attn.utils.distributed.all_gather")
        ),
    }


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


def install() -> list[str]:
    """Install the stand-ins that are needed; return the names of the modules that were stubbed."""
    stubs: dict[str, types.ModuleType] = {}
    if _missing("vllm"):
        stubs.update(_vllm_modules())
    if _missing("flash_attn"):
        stubs.update(_flash_attn_modules())
    elif _missing("flash_attn_2_cuda"):
        stubs["flash_attn_2_cuda"] = _module("flash_attn_2_cuda")
    for name, module in stubs.items():
        sys.modules.setdefault(name, module)
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, sys.modules[name])
    top = sorted({name.split(".")[0] for name in stubs})
    if top:
        print(f"[openrlhf_stubs] CPU test stand-ins installed for: {', '.join(top)}", file=sys.stderr)
    return top


if __name__ == "__main__":
    install()
    from asym_openrlhf.cli.train_ppo_ray import main

    sys.exit(main(sys.argv[1:]))


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
