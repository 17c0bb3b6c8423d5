"""A placeholder for ``flash_attn_2_cuda``, flash-attn's compiled CUDA kernels, where they cannot exist (a CPU).

OpenRLHF 0.11.2 imports ``flash_attn.bert_padding`` and ``flash_attn.utils.distributed`` at module level (both
plain torch), but ``import flash_attn`` first runs ``flash_attn_interface``, whose first statement is
``import flash_attn_2_cuda``. On a CPU that module cannot be built, so nothing of OpenRLHF imports, not even
its argument parser. This placeholder is the narrowest stand-in that lets the Python parts import:

  * it is installed only where the real module cannot be found (``install()`` checks first);
  * it holds no kernels: any kernel looked up on it (``fwd``, ``varlen_fwd``, ...) raises a RuntimeError
    naming the kernel when called, so nothing can silently compute a fake attention;
  * ``install()`` says on stderr that it was installed;
  * with it, flash-attn's Triton cross-entropy (also a GPU kernel) is made unimportable, so that OpenRLHF's
    log-probs take upstream's own pure-torch fallback.

Who installs it: the launcher under ``--dry_run`` only (a real launch without the GPU stack refuses in one
line), and the CPU tests. vLLM and everything else are the real packages.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types

MODULE = "flash_attn_2_cuda"
MARKER = "__asym_kernel_placeholder__"
TRITON_CROSS_ENTROPY = "flash_attn.ops.triton.cross_entropy"


class KernelPlaceholder(types.ModuleType):
    """``flash_attn_2_cuda`` without kernels: looking one up works, calling it raises."""

    def __getattr__(self, name: str):
        if name.startswith("__"):  # probes such as __path__ or __wrapped__ must see a plain module
            raise AttributeError(name)

        def kernel(*args, **kwargs):
            raise RuntimeError(
                f"{MODULE}.{name} was called, but {MODULE} is a CPU placeholder "
                "(asym_openrlhf/integration/kernel_placeholder.py): flash-attn's CUDA kernels need a GPU install"
            )

        kernel.__name__ = name
        return kernel


def is_placeholder(module) -> bool:
    return getattr(module, MARKER, False) is True


def kernels_available() -> bool:
    """Whether the real compiled kernels can be imported (a GPU install)."""
    loaded = sys.modules.get(MODULE)
    if loaded is not None:
        return not is_placeholder(loaded)
    try:
        return importlib.util.find_spec(MODULE) is not None
    except (ImportError, ValueError):
        return False


def install(quiet: bool = False) -> bool:
    """Put the placeholder in ``sys.modules`` if the real kernels are missing; return whether it did.

    Also usable as a Ray ``worker_process_setup_hook`` (no arguments), so that worker processes can import
    OpenRLHF the way the driver did.
    """
    if MODULE in sys.modules or kernels_available():
        return False
    module = KernelPlaceholder(MODULE, __doc__)
    module.__spec__ = importlib.machinery.ModuleSpec(MODULE, None)  # transformers probes with find_spec
    module.__file__ = __file__
    setattr(module, MARKER, True)
    sys.modules[MODULE] = module
    # flash-attn's Triton cross-entropy is a GPU kernel too. OpenRLHF's log_probs_from_logits imports it in a
    # try block and falls back to plain torch on ImportError (models/utils.py l.179-189): hide it, so that
    # upstream takes its own CPU path instead of calling torch.cuda.device() on a CPU tensor.
    sys.modules.setdefault(TRITON_CROSS_ENTROPY, None)
    if not quiet:
        print(
            f"[asym] {MODULE} (flash-attn's CUDA kernels) is missing: installed a CPU placeholder that raises if "
            "a kernel is called (asym_openrlhf/integration/kernel_placeholder.py)",
            file=sys.stderr,
        )
    return True
