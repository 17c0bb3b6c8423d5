"""Each option is declared once: a throwaway option added in one place, as a field of ``AdvantageOptions``,
reaches every parser, the resolved configuration and the experience maker, with its range checked and the
flag named in the error. The edit is made to a copy of the package, run in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # copies the package and runs the launcher in a subprocess

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = "    def validate(self, group_size: int | None = None) -> None:"
THROWAWAY = """    throwaway: float = option(
        0.0, "--asym.throwaway", "an option added by a test, in this one place.", check=in_range(0, 1)
    )

"""

CHECK = r"""
import json, sys
sys.path.insert(0, sys.argv[2])
import upstream_support
upstream_support.install()  # flash-attn's kernel placeholder, where the CUDA kernels are missing
from asym_openrlhf.algorithms.advantages import AdvantageOptions
from asym_openrlhf.cli import main, train_ppo_ray
from asym_openrlhf.integration.experience_maker import advantage_options

argv = json.loads(sys.argv[1])
seen = {}
seen["launcher_help"] = "--asym.throwaway" in train_ppo_ray.build_parser().format_help()
for command in ("advantage-table", "lite"):
    parser, module = main.build_parser([command])
    parsed = parser.parse_args([command, "--asym.throwaway", "0.5"])
    seen[command] = parsed.asym_throwaway
from asym_openrlhf.lite.settings import default_settings
seen["lite_settings"] = default_settings(asym_throwaway=0.75).options.throwaway
args = train_ppo_ray.resolve_config(argv + ["--asym.throwaway", "0.25"])
seen["resolved"] = args.asym.throwaway
seen["experience_maker"] = advantage_options(args.asym).throwaway
seen["default"] = train_ppo_ray.resolve_config(argv).asym.throwaway
try:
    train_ppo_ray.resolve_config(argv + ["--asym.throwaway", "2"])
except ValueError as err:
    seen["error"] = str(err)
print(json.dumps(seen))
"""


def test_a_new_option_is_one_edit(tmp_path):
    package = tmp_path / "asym_openrlhf"
    shutil.copytree(
        ROOT / "asym_openrlhf", package, ignore=shutil.ignore_patterns("__pycache__", "data", "assets")
    )
    for big in ("data", "assets"):  # unchanged, and large: linked, not copied
        if (ROOT / "asym_openrlhf" / big).exists():
            (package / big).symlink_to(ROOT / "asym_openrlhf" / big)
    source = package / "algorithms" / "advantages.py"
    text = source.read_text()
    assert text.count(ANCHOR) == 1
    source.write_text(text.replace(ANCHOR, THROWAWAY + ANCHOR))

    argv = ["--rollout.n_samples_per_prompt", "8", "--algo.kl.init_coef", "0", "--reward.remote_url", "r.py"]
    argv += [
        "--actor.model_name_or_path",
        "m",
        "--data.prompt_dataset",
        "d.jsonl",
        "--rollout.max_new_tokens",
        "16",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "evaluation")])}
    done = subprocess.run(
        [sys.executable, "-c", CHECK, json.dumps(argv), str(ROOT / "tests")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["launcher_help"] and seen["advantage-table"] == seen["lite"] == 0.5
    assert seen["resolved"] == seen["experience_maker"] == 0.25
    assert seen["default"] == 0.0 and seen["lite_settings"] == 0.75
    assert seen["error"].startswith("--asym.throwaway: must be a number in [0, 1]")
