"""The versions docker/Dockerfile pins equal setup.py's (CI cannot build the image, so this is checked on text).

setup.py is run with a stand-in ``setuptools`` that records the ``setup()`` call, so the pins are read exactly as
pip would read them (``OPENRLHF_PINS``, ``GPU_PINS``, the ``math-verify`` requirement), without copying them here.
"""

from __future__ import annotations

import os
import re
import sys
import types
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker" / "Dockerfile"
# The extras whose packages go into the image (`dev` holds the CPU test tools, not installed there).
IMAGE_EXTRAS = ("openrlhf", "gpu")
# name[extras]==version, as written in `pip install` arguments and in the constraint file.
PIN_PATTERN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*(?:\[[^\]\s]*\])?==[0-9][A-Za-z0-9.+!-]*)")


def exact_pins(requirements) -> dict[str, str]:
    """{canonical name: version} for every ``==`` requirement."""
    pins = {}
    for line in requirements:
        req = Requirement(line)
        for spec in req.specifier:
            if spec.operator == "==":
                pins[canonicalize_name(req.name)] = spec.version
    return pins


def dockerfile_pins(text: str) -> dict[str, set[str]]:
    """{canonical name: versions} over every ``name==version`` outside comments (so a name pinned twice at two
    versions shows up as two)."""
    pins: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for token in PIN_PATTERN.findall(line):
            req = Requirement(token)
            version = next(iter(req.specifier)).version
            pins.setdefault(canonicalize_name(req.name), set()).add(version)
    return pins


def pin_mismatches(dockerfile_text: str, setup_pins: dict[str, str]) -> list[str]:
    """One message per disagreement, each naming the package."""
    in_docker = dockerfile_pins(dockerfile_text)
    problems = [
        f"{name}: the Dockerfile pins it at several versions {sorted(versions)}"
        for name, versions in in_docker.items()
        if len(versions) > 1
    ]
    for name, version in sorted(setup_pins.items()):
        if name not in in_docker:
            problems.append(f"{name}: setup.py pins {version}, the Dockerfile does not pin it")
        elif in_docker[name] != {version}:
            problems.append(f"{name}: setup.py pins {version}, the Dockerfile pins {sorted(in_docker[name])}")
    return problems


@pytest.fixture(scope="module")
def setup_call():
    """Runs setup.py with a recording ``setup()``: returns (its keyword arguments, its module globals)."""
    recorded = {}
    fake = types.ModuleType("setuptools")
    fake.setup = lambda **kwargs: recorded.update(kwargs)
    fake.find_packages = lambda *args, **kwargs: []
    saved, saved_cwd = sys.modules.get("setuptools"), Path.cwd()
    sys.modules["setuptools"] = fake
    try:
        os.chdir(REPO)  # setup.py opens README.md relative to itself
        namespace = {"__name__": "setup_under_test", "__file__": str(REPO / "setup.py")}
        exec(compile((REPO / "setup.py").read_text(encoding="utf-8"), "setup.py", "exec"), namespace)
    finally:
        os.chdir(saved_cwd)
        if saved is None:
            del sys.modules["setuptools"]
        else:
            sys.modules["setuptools"] = saved
    return recorded, namespace


@pytest.fixture(scope="module")
def setup_pins(setup_call) -> dict[str, str]:
    kwargs, _ = setup_call
    requirements = list(kwargs["install_requires"])
    for extra in IMAGE_EXTRAS:
        requirements += kwargs["extras_require"][extra]
    return exact_pins(requirements)


def test_setup_pins_cover_what_the_issue_names(setup_call, setup_pins):
    # The image's promise: OpenRLHF and what it pins, vLLM and flash-attn, and the grader.
    _, namespace = setup_call
    assert exact_pins(namespace["OPENRLHF_PINS"] + namespace["GPU_PINS"]).keys() <= setup_pins.keys()
    assert {"openrlhf", "deepspeed", "ray", "transformers", "vllm", "flash-attn", "math-verify"} <= set(
        setup_pins
    )


def test_dockerfile_pins_equal_setup_py(setup_pins):
    problems = pin_mismatches(DOCKERFILE.read_text(encoding="utf-8"), setup_pins)
    assert not problems, "docker/Dockerfile and setup.py disagree:\n" + "\n".join(problems)


def test_dockerfile_pins_vllms_torch_family():
    # vllm==0.29.0 requires exactly these (its wheel's metadata); they are not in setup.py, which leaves torch
    # free so that CPU machines keep their CPU build.
    pins = dockerfile_pins(DOCKERFILE.read_text(encoding="utf-8"))
    assert pins["torch"] == {"2.13.0"}
    assert pins["torchvision"] == {"0.28.0"}
    assert pins["torchaudio"] == {"2.11.0"}


def test_a_mismatch_names_the_package():
    text = 'RUN pip install vllm==0.28.1 "ray[default]==2.55.0"\n'
    setup = {"vllm": "0.29.0", "ray": "2.55.0", "flash-attn": "2.8.3"}
    assert pin_mismatches(text, setup) == [
        "flash-attn: setup.py pins 2.8.3, the Dockerfile does not pin it",
        "vllm: setup.py pins 0.29.0, the Dockerfile pins ['0.28.1']",
    ]


def test_two_versions_of_one_package_are_reported():
    text = "RUN pip install flash_attn==2.8.3\nRUN pip install flash-attn==2.8.2\n"
    assert pin_mismatches(text, {"flash-attn": "2.8.3"}) == [
        "flash-attn: the Dockerfile pins it at several versions ['2.8.2', '2.8.3']",
        "flash-attn: setup.py pins 2.8.3, the Dockerfile pins ['2.8.2', '2.8.3']",
    ]


def test_comment_lines_are_skipped_but_extras_are_read():
    text = "# RUN pip install vllm==0.1\nRUN pip install 'math-verify[antlr4-13-2]==0.9.0'\n"
    assert dockerfile_pins(text) == {"math-verify": {"0.9.0"}}


def test_the_docker_readme_states_the_pinned_versions():
    # docker/README.md's version table is read by people choosing a driver and a base: a bump must reach it.
    text = DOCKERFILE.read_text(encoding="utf-8")
    readme = (REPO / "docker" / "README.md").read_text(encoding="utf-8")
    base = re.search(r"^FROM (\S+)", text, flags=re.MULTILINE).group(1)
    assert f"`{base}`" in readme
    for name, versions in dockerfile_pins(text).items():
        for version in versions:
            assert version in readme, f"docker/README.md does not mention {name} {version}"
