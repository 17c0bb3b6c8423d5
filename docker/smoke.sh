#!/usr/bin/env bash
# asym-smoke: is this image's Python stack whole? Installed as /usr/local/bin/asym-smoke by docker/Dockerfile,
# run at the end of the build and as the container's HEALTHCHECK.
#   1. every exact pin of asym_openrlhf (its `gpu` and `openrlhf` extras included) and of $PIP_CONSTRAINT
#      is the version installed;
#   2. everything the GPU path uses imports: torch, vLLM, flash-attn, DeepSpeed, Ray, transformers, OpenRLHF,
#      Math-Verify, and every module of asym_openrlhf and asym_eval;
#   3. with a GPU visible: one flash-attn forward on it (a build machine has none, so the build skips this);
#   4. `asym-rl advantage-table` prints the main preset's table.
# --quiet prints nothing unless a check fails (then everything it printed).
set -euo pipefail

if [[ ${1:-} == --quiet ]]; then
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  if ! "$0" >"$log" 2>&1; then
    cat "$log"
    exit 1
  fi
  exit 0
fi

python3 - <<'EOF'
import importlib
import importlib.metadata as metadata
import os
import pkgutil
import sys

from packaging.requirements import Requirement

# 1. Pins: the package's own metadata says what setup.py pinned; the constraint file says vLLM's torch family.
pins = []
for line in metadata.requires("asym_openrlhf") or []:
    req = Requirement(line)
    if req.marker is None or any(req.marker.evaluate({"extra": extra}) for extra in ("gpu", "openrlhf")):
        pins += [(req.name, spec.version) for spec in req.specifier if spec.operator == "=="]
constraint_file = os.environ.get("PIP_CONSTRAINT", "")
if constraint_file and os.path.exists(constraint_file):
    for line in open(constraint_file, encoding="utf-8"):
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            pins += [(req.name, spec.version) for spec in req.specifier if spec.operator == "=="]
wrong = []
for name, wanted in sorted(set(pins)):
    try:
        installed = metadata.version(name)
    except metadata.PackageNotFoundError:
        installed = "not installed"
    # torch wheels carry a local tag (2.13.0+cu130): the pin is on the public version.
    ok = installed.split("+")[0] == wanted
    print(f"[smoke] {name:<14} pinned {wanted:<10} installed {installed}{'' if ok else '   <-- MISMATCH'}")
    if not ok:
        wrong.append(name)
if wrong:
    sys.exit(f"[smoke] version mismatch: {', '.join(wrong)}")

# 2. Imports.
for name in ("torch", "vllm", "flash_attn", "deepspeed", "ray", "transformers", "openrlhf",
             "openrlhf.cli.train_ppo_ray", "math_verify"):
    importlib.import_module(name)
for package_name in ("asym_openrlhf", "asym_eval"):
    package = importlib.import_module(package_name)
    for module in pkgutil.walk_packages(package.__path__, prefix=package_name + "."):
        importlib.import_module(module.name)
print("[smoke] imports ok")

# 3. One flash-attn call where a GPU is visible.
import torch

if torch.cuda.is_available():
    from flash_attn import flash_attn_func

    q = torch.randn(1, 16, 2, 64, device="cuda", dtype=torch.bfloat16)  # (B, T, heads, head_dim)
    out = flash_attn_func(q, q, q, causal=True)
    assert out.shape == q.shape and torch.isfinite(out).all()
    print(f"[smoke] flash-attn ok on {torch.cuda.get_device_name()}")
else:
    print("[smoke] no GPU visible: flash-attn kernel not run")
EOF

asym-rl advantage-table --preset main --group_size 8
echo "[smoke] ok"
