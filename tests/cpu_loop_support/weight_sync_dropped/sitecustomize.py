"""A broken weight sync, for the test that the check catches one: vLLM's workers receive every broadcast tensor
(so the sender does not hang) and drop it, so the engines keep generating with the weights they started with.

Put on ``PYTHONPATH`` of a CPU run only by tests/test_openrlhf_cpu_loop.py. The CPU backend's own
``sitecustomize`` comes first on a worker's path and runs this one after it.
"""

import os

if os.environ.get("ASYM_CPU_BACKEND") == "1":
    from asym_openrlhf.integration import cpu_backend

    _MODULE = "openrlhf.trainer.ray.vllm_worker_wrap"
    _backend_patch = cpu_backend.MODULE_PATCHES[_MODULE]

    def _patch_dropping_weights(module):
        _backend_patch(module)

        def update_weight_that_drops(self, name, dtype, shape, empty_cache=False):
            import torch

            weight = torch.empty(shape, dtype=dtype, device=self.device)
            self._model_update_group.broadcast(weight, src=0, stream=None)  # received, never loaded

        module.WorkerWrap.update_weight = update_weight_that_drops

    cpu_backend.MODULE_PATCHES[_MODULE] = _patch_dropping_weights
