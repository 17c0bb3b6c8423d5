#!/usr/bin/env bash
# Runs one command in the asym_openrlhf image on this GPU node, with the GPUs, enough shared memory, and the
# repository, data, checkpoint and model-cache folders mounted. Without a command: an interactive shell.
#
#   docker/run.sh env DRY_RUN=1 bash examples/scripts/qwen3-4b/train_asymgrpo.sh
#   docker/run.sh asym-eval run --model runs/qwen3-4b/asymgrpo/ckpt/global_step100_hf \
#       --output_dir runs/eval/qwen3-4b/asymgrpo
#
# Host paths and options come from the environment [defaults]:
#   ASYM_IMAGE        image to run                                          [asym-openrlhf:0.1.0]
#   ASYM_REPO_DIR     the checkout, mounted at /workspace/asym_openrlhf, the working directory  [this repo]
#   ASYM_DATA_DIR     prepared data, mounted at <checkout>/data             [$ASYM_REPO_DIR/data]
#   ASYM_RUNS_DIR     checkpoints, logs, evaluations, at <checkout>/runs    [$ASYM_REPO_DIR/runs]
#   ASYM_HF_HOME      Hugging Face cache (model weights), at /hf_home       [$HOME/.cache/huggingface]
#   ASYM_GPUS         value of `docker run --gpus`                          [all]
#   ASYM_SHM_SIZE     /dev/shm size: NCCL and Ray's object store use it     [64g]
#   ASYM_NETWORK      docker network; host lets Ray nodes and jobs reach each other  [host]
#   ASYM_DOCKER_ARGS  more `docker run` arguments, split on spaces, e.g. "--name asym-ray --detach"
#   ASYM_DOCKER       docker client                                         [docker]
# Data and runs are mounted where the launch scripts look by default (examples/scripts/common.sh: DATA_DIR,
# SAVE_DIR), so the scripts need no path settings inside. The container runs as your own UID/GID, so what it
# writes into the mounts stays yours.
set -euo pipefail

repo_dir=$(cd "${ASYM_REPO_DIR:-$(dirname "$0")/..}" && pwd)
data_dir=${ASYM_DATA_DIR:-$repo_dir/data}
runs_dir=${ASYM_RUNS_DIR:-$repo_dir/runs}
hf_home=${ASYM_HF_HOME:-${HOME:-/tmp}/.cache/huggingface}
# Docker creates a missing host folder as root; create them here so they belong to the caller.
mkdir -p "$data_dir" "$runs_dir" "$hf_home"
workdir=/workspace/asym_openrlhf

extra_args=()
if [[ -n ${ASYM_DOCKER_ARGS:-} ]]; then
  read -r -a extra_args <<<"$ASYM_DOCKER_ARGS"
fi
tty_args=()
if [[ -t 0 && -t 1 ]]; then
  tty_args=(--interactive --tty)
fi
if [[ $# -eq 0 ]]; then
  set -- bash
fi

docker_args=(
  run --rm "${tty_args[@]}"
  --gpus "${ASYM_GPUS:-all}"
  --shm-size "${ASYM_SHM_SIZE:-64g}"
  --ulimit memlock=-1 --ulimit stack=67108864
  --network "${ASYM_NETWORK:-host}"
  --user "$(id -u):$(id -g)"
  # An arbitrary UID has no home and no passwd entry in the image: Triton, vLLM and Ray write caches under
  # $HOME, and Python's getpass.getuser() (torch's compile cache, Ray) reads $USER before the passwd file.
  --env HOME=/tmp/asym-home --env USER="$(id -un 2>/dev/null || echo asym)"
  --volume "$repo_dir:$workdir"
  --volume "$data_dir:$workdir/data"
  --volume "$runs_dir:$workdir/runs"
  --volume "$hf_home:/hf_home"
  --env HF_HOME=/hf_home
  # Passed only when set on the host: credentials stay out of the image, interface names differ by site,
  # and the launch scripts read the rest (examples/scripts/common.sh).
  --env HF_TOKEN --env HF_HUB_OFFLINE --env WANDB_API_KEY
  --env NCCL_SOCKET_IFNAME --env GLOO_SOCKET_IFNAME --env NCCL_IB_HCA
  --env MODEL_PATH --env RAY_ADDRESS --env EPISODES --env DRY_RUN
  # Read by the reward function inside Ray's vLLM actors: it must be set on the container running `ray start`.
  --env ASYM_REWARD_TIMEOUT_S
  --workdir "$workdir"
  "${extra_args[@]}"
  "${ASYM_IMAGE:-asym-openrlhf:0.1.0}"
  "$@"
)
exec "${ASYM_DOCKER:-docker}" "${docker_args[@]}"
