"""Prompts and the two generation backends.

Both backends get the same token ids (``encode_prompt``) and return, per prompt, k response strings. With
temperature 0 both are greedy and give the same text; with sampling each prompt has its own seed
(``--seed`` + the problem's index), so a resumed run regenerates a missing prompt exactly as before
(per backend: vLLM's and torch's random streams differ).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

# SPEC §6: the instruction that follows the problem in the user turn.
INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
PROMPT_FORMATS = ("chat", "raw")
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class BackendOptions:
    tensor_parallel_size: int = 1  # vllm only
    dtype: str = "auto"  # "auto": the checkpoint's dtype for hf; vLLM's choice (bfloat16 on CPU) for vllm
    enforce_eager: bool = False  # vllm only: skip graph compilation (faster start, slower decoding)


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    max_tokens: int


def build_prompt(tokenizer, problem: str, prompt_format: str) -> str:
    """``chat``: the model's chat template around "problem\\ninstruction" (Qwen3 non-thinking mode);
    ``raw``: the problem text alone is the prompt (e.g. the tiny trainer's ``Q:47+8=A:``)."""
    if prompt_format == "raw":
        return problem
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "--prompt_format chat: the model's tokenizer has no chat template (use --prompt_format raw)"
        )
    messages = [{"role": "user", "content": f"{problem}\n{INSTRUCTION}"}]
    # enable_thinking=False is read by Qwen3's template (non-thinking mode) and ignored by others.
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, enable_thinking=False
    )


def encode_prompt(tokenizer, prompt: str, prompt_format: str) -> list[int]:
    # A chat template writes its own BOS; a raw prompt gets the tokenizer's special tokens, as in training.
    return tokenizer(prompt, add_special_tokens=prompt_format == "raw")["input_ids"]


class HFBackend:
    """transformers ``generate``, one prompt at a time with its k samples in one call (CPU, small models)."""

    name = "hf"

    def __init__(self, model_dir: str, options: BackendOptions):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=options.dtype)
        self.model = model.to(self.device).eval()

    def generate(
        self, prompt_ids: list[list[int]], n_samples: int, sampling: Sampling, seeds: list[int]
    ) -> Iterator[list[str]]:
        """Yields the k responses of each prompt, in order (so the caller can save as it goes)."""
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self.tokenizer.eos_token_id
        for ids, seed in zip(prompt_ids, seeds):
            self.torch.manual_seed(seed)
            inputs = self.torch.tensor([ids], device=self.device)
            greedy = sampling.temperature == 0
            with self.torch.no_grad():
                output = self.model.generate(
                    inputs,
                    attention_mask=self.torch.ones_like(inputs),
                    do_sample=not greedy,
                    temperature=None if greedy else sampling.temperature,
                    top_p=None if greedy else sampling.top_p,
                    top_k=None if greedy else 0,
                    max_new_tokens=sampling.max_tokens,
                    # greedy: the k samples are one sequence k times (generate refuses k > 1 without sampling)
                    num_return_sequences=1 if greedy else n_samples,
                    pad_token_id=pad_id,
                )
            texts = self.tokenizer.batch_decode(output[:, inputs.shape[1] :], skip_special_tokens=True)
            yield texts * n_samples if greedy else texts


class VLLMBackend:
    """vLLM: all k samples of a prompt in one request (``SamplingParams(n=k)``), the whole list of prompts
    in one ``LLM.generate`` call."""

    name = "vllm"

    def __init__(self, model_dir: str, options: BackendOptions):
        from vllm import LLM

        self.llm = LLM(
            model=model_dir,
            tensor_parallel_size=options.tensor_parallel_size,
            dtype=options.dtype,
            enforce_eager=options.enforce_eager,
        )
        self.tokenizer = self.llm.get_tokenizer()

    def generate(
        self, prompt_ids: list[list[int]], n_samples: int, sampling: Sampling, seeds: list[int]
    ) -> Iterator[list[str]]:
        from vllm import SamplingParams

        greedy = sampling.temperature == 0
        params = [
            SamplingParams(
                n=1 if greedy else n_samples,  # vLLM refuses n > 1 when greedy: the k samples are equal
                temperature=sampling.temperature,
                top_p=1.0 if greedy else sampling.top_p,
                max_tokens=sampling.max_tokens,
                seed=seed,
            )
            for seed in seeds
        ]
        prompts = [{"prompt_token_ids": ids} for ids in prompt_ids]
        outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=True)
        for output in outputs:
            texts = [completion.text for completion in sorted(output.outputs, key=lambda c: c.index)]
            yield texts * n_samples if greedy else texts


def vllm_available() -> bool:
    import importlib.util
    import sys

    try:
        return importlib.util.find_spec("vllm") is not None
    except ValueError:  # a module in sys.modules without a spec
        return "vllm" in sys.modules


def make_backend(name: str, model_dir: str, options: BackendOptions):
    if name == "vllm" and not vllm_available():
        raise ValueError(
            "--backend vllm: vLLM is not installed here (use --backend hf, or run scripts/setup_env.sh)"
        )
    backend = {"hf": HFBackend, "vllm": VLLMBackend}[name]
    return backend(model_dir, options)
