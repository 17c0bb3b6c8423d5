"""The one seam into OpenRLHF 0.11.2: a launcher wrapper (``cli/train_ppo_ray.py``) and subclasses of upstream's
experience maker, samples generator, policy loss, policy actor and trainer. A GPU run patches nothing in place;
a CPU run (``--cpu_backend``) redirects upstream's CUDA-only calls, all of them listed in ``cpu_backend``.

``upstream`` imports every OpenRLHF name the project depends on; the other modules import them from there.
Importing this package does not import OpenRLHF (it needs vLLM and flash-attn): the modules below do.

=========================  ==========================================================================
``experience_maker``       ``AsymExperienceMaker``: our estimators from the binary scores, by group
``policy_loss``            ``AsymPolicyLoss`` (Entropy Advantage, Dr.GRPO's loss) and the policy actor
``trainer``                ``AsymPPOTrainer``: installs the experience maker, logs the paper's metrics;
                           ``FullBatchSamplesGenerator``: no partial rollout batch, leftovers kept in checkpoints
``checkpoints``            the HF copies follow upstream's rotation; the saved-step and final-step markers
``weight_sync_check``      ``--asym.check_weight_sync``: vLLM against the policy after every weight sync
``cpu_backend``            ``--cpu_backend``: the whole loop on a CPU (each redirected CUDA call, with its line)
``kernel_placeholder``     a stand-in for flash-attn's compiled kernels where they cannot exist (a CPU)
=========================  ==========================================================================
"""
