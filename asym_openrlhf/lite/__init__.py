"""Single-machine RL training (``asym-rl lite``) and the entropy-dynamics study (``asym-rl study``).

The trainer calls the same estimator registry, loss pieces and metrics as the OpenRLHF path
(``asym_openrlhf.algorithms``); this package only adds a tiny model, a task, a sampler and a loop.
"""
