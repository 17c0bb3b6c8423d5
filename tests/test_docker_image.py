"""What can be checked of the image without a Docker engine: the Dockerfile's shape, docker/run.sh's command
line (through a stand-in ``docker`` that records its arguments), and docker/smoke.sh's version check."""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined, current = [], ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        keyword, _, args = current.strip().partition(" ")
        joined.append((keyword.upper(), args.strip()))
        current = ""
    return joined


def test_base_is_a_dated_ngc_pytorch_image():
    froms = [args for keyword, args in instructions() if keyword == "FROM"]
    assert len(froms) == 1
    assert re.fullmatch(r"nvcr\.io/nvidia/pytorch:\d\d\.\d\d-py3", froms[0]), froms[0]


def test_runs_as_a_non_root_user_and_carries_no_secrets():
    steps = instructions()
    users = [i for i, (keyword, _) in enumerate(steps) if keyword == "USER"]
    assert users, "no USER instruction"
    last_user = steps[users[-1]][1]
    assert last_user not in ("root", "0", "0:0")
    # Nothing after the switch may run as root again, and the switch comes after every install.
    assert all(keyword != "RUN" for keyword, _ in steps[users[-1] :])
    for keyword, args in steps:
        if keyword in ("ENV", "ARG"):
            assert not re.search(r"TOKEN|PASSWORD|SECRET|API_KEY", args, re.IGNORECASE), args


def test_the_smoke_check_runs_at_build_and_as_healthcheck():
    steps = instructions()
    assert any(keyword == "RUN" and "then asym-smoke; fi" in args for keyword, args in steps)
    assert ("ARG", "SMOKE_AT_BUILD=1") in steps  # on by default
    health = [args for keyword, args in steps if keyword == "HEALTHCHECK"]
    assert len(health) == 1 and "asym-smoke" in health[0]
    assert "asym-rl advantage-table" in (REPO / "docker" / "smoke.sh").read_text(encoding="utf-8")


def test_smoke_names_each_package_whose_version_is_wrong():
    # On a CPU machine vLLM is not installed: the check must fail and name it, while the packages that are
    # installed at their pinned versions pass.
    venv_bin = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{venv_bin}{os.pathsep}{os.environ['PATH']}", PIP_CONSTRAINT="")
    result = subprocess.run(
        ["bash", str(REPO / "docker" / "smoke.sh")], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode != 0
    # (flash-attn may or may not be installed on a CPU machine; vLLM's official wheel never is.)
    assert re.search(r"^\[smoke\] version mismatch: (flash-attn, )?vllm$", result.stderr, flags=re.MULTILINE)
    lines = result.stdout.splitlines()
    assert any(
        re.match(r"\[smoke\] transformers +pinned 5\.15\.0 +installed 5\.15\.0$", line) for line in lines
    )
    assert any(
        re.match(r"\[smoke\] vllm +pinned 0\.29\.0 +installed not installed +<-- MISMATCH", line)
        for line in lines
    )


def run_script(tmp_path: Path, *command: str, **env_overrides: str) -> list[str]:
    """Runs docker/run.sh with a stand-in docker client; returns the arguments it was given."""
    record = tmp_path / "docker_args"
    fake_docker = tmp_path / "fake_docker"
    fake_docker.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {record}\n')
    fake_docker.chmod(0o755)
    env = dict(os.environ, HOME=str(tmp_path / "home"), ASYM_DOCKER=str(fake_docker), **env_overrides)
    subprocess.run(
        ["bash", str(REPO / "docker" / "run.sh"), *command],
        check=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    return record.read_text().splitlines()


def test_run_mounts_the_folders_and_passes_the_command_through(tmp_path):
    data, runs, hf = tmp_path / "data", tmp_path / "runs", tmp_path / "hf"
    args = run_script(
        tmp_path,
        "asym-eval",
        "run",
        "--model",
        "runs/a b",
        ASYM_DATA_DIR=str(data),
        ASYM_RUNS_DIR=str(runs),
        ASYM_HF_HOME=str(hf),
        ASYM_IMAGE="my/image:1",
        ASYM_SHM_SIZE="32g",
        ASYM_DOCKER_ARGS="--name ray-head --detach",
    )
    image = args.index("my/image:1")
    # The command comes right after the image, each argument intact (the space in "a b" included).
    assert args[image + 1 :] == ["asym-eval", "run", "--model", "runs/a b"]
    options = args[:image]
    assert options[:2] == ["run", "--rm"]
    pairs = set(zip(options, options[1:]))
    assert ("--gpus", "all") in pairs
    assert ("--shm-size", "32g") in pairs
    assert ("--network", "host") in pairs
    assert ("--user", f"{os.getuid()}:{os.getgid()}") in pairs
    assert ("--env", f"USER={pwd.getpwuid(os.getuid()).pw_name}") in pairs
    # Data and runs land where the launch scripts look by default (<checkout>/data, <checkout>/runs).
    assert ("--volume", f"{REPO}:/workspace/asym_openrlhf") in pairs
    assert ("--volume", f"{data}:/workspace/asym_openrlhf/data") in pairs
    assert ("--volume", f"{runs}:/workspace/asym_openrlhf/runs") in pairs
    assert ("--volume", f"{hf}:/hf_home") in pairs
    assert ("--env", "HF_HOME=/hf_home") in pairs
    assert ("--workdir", "/workspace/asym_openrlhf") in pairs
    assert ("--name", "ray-head") in pairs and "--detach" in options
    assert "--tty" not in options  # stdin is not a terminal here
    assert data.is_dir() and runs.is_dir() and hf.is_dir()  # created as the caller, not by docker as root


def test_run_without_a_command_opens_a_shell_with_defaults(tmp_path):
    args = run_script(tmp_path, ASYM_DATA_DIR=str(tmp_path / "d"), ASYM_RUNS_DIR=str(tmp_path / "r"))
    assert args[-2:] == ["asym-openrlhf:0.1.0", "bash"]
    assert ("--shm-size", "64g") in set(zip(args, args[1:]))
    assert ("--volume", f"{tmp_path / 'home' / '.cache' / 'huggingface'}:/hf_home") in set(
        zip(args, args[1:])
    )
