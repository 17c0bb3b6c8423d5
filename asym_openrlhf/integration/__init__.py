"""The one seam into OpenRLHF 0.11.2: a launcher wrapper and three subclasses, nothing patched in place.

``upstream`` imports every OpenRLHF name the project depends on; the other modules import them from there.
Importing this package does not import OpenRLHF (it needs vLLM and flash-attn): the modules below do.

=========================  ==========================================================================
``experience_maker``       ``AsymExperienceMaker``: our estimators from the binary scores, by group
``policy_loss``            ``AsymPolicyLoss`` (Entropy Advantage, Dr.GRPO's loss) and the policy actor
``trainer``                ``AsymPPOTrainer``: installs the experience maker, logs the paper's metrics
=========================  ==========================================================================
"""
