"""Which backend generates: ``make_backend`` picks the in-process ones of ``generation.py`` (hf, one vLLM
engine), several vLLM engines in their own processes (``engines.py``) or a served model (``served.py``).

Its own module so that ``generation.py`` holds what every backend shares (options, sampling, prompts, the vLLM
settings) and imports none of them: each backend imports it, and only this module imports every backend.
"""

from __future__ import annotations

from asym_eval.generation import BackendOptions, HFBackend, VLLMBackend, vllm_available


def make_backend(name: str, model_dir: str, options: BackendOptions):
    if name == "vllm" and not vllm_available():
        raise ValueError(
            "--backend vllm: vLLM is not installed here (use --backend hf, or run scripts/setup_env.sh)"
        )
    if name == "vllm" and options.data_parallel_size > 1:
        from asym_eval.engines import DataParallelVLLM

        return DataParallelVLLM(model_dir, options)
    if name == "openai":
        from asym_eval.served import OpenAIBackend

        return OpenAIBackend(model_dir, options)
    backend = {"hf": HFBackend, "vllm": VLLMBackend}[name]
    return backend(model_dir, options)
