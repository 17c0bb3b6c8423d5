"""Installs ``asym_openrlhf.integration.cpu_backend`` at interpreter start, in every process of a CPU run.

This folder is put on ``PYTHONPATH`` only by a CPU run (the launcher's ``--cpu_backend``), for Ray's workers
and the subprocesses they start (vLLM's engine core and worker), which Ray's worker setup hook does not reach.
Python imports the first ``sitecustomize`` on its path; another one found further along is run after ours.
"""

import importlib.machinery
import importlib.util
import os
import sys

if os.environ.get("ASYM_CPU_BACKEND") == "1":
    from asym_openrlhf.integration import cpu_backend

    cpu_backend.install()

_here = os.path.dirname(os.path.abspath(__file__))
_next = importlib.machinery.PathFinder.find_spec(
    "sitecustomize", [p for p in sys.path if os.path.abspath(p or ".") != _here]
)
if _next is not None and _next.loader is not None:
    _next.loader.exec_module(importlib.util.module_from_spec(_next))
