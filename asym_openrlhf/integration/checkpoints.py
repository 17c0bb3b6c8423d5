"""A disk bound for ``--ckpt.save_hf`` copies, and the step of the final policy (read off OpenRLHF 0.11.2).

Upstream's ``PolicyModelActor.save_checkpoint(tag)`` writes a Hugging Face copy of the policy to
``<--ckpt.path>/<tag>_hf``: ``global_step<N>_hf`` at every ``--ckpt.save_steps`` step
(``PPOTrainer.save_logs_and_checkpoints``) and ``best_global_step<N>_hf`` at every new best of
``--ckpt.best_metric_key`` (``save_best_checkpoint``). ``--ckpt.max_num`` rotates only the DeepSpeed states in
``<--ckpt.path>/_actor`` (``DeepspeedStrategy.save_ckpt``), so the HF copies, about 8 GB each for a 4B model in
bf16, would pile up. ``AsymPPOTrainer`` calls ``prune_hf_checkpoints`` after each of those saves returned (both
``ray.get`` every actor's save), which keeps the HF copy of exactly the DeepSpeed states upstream's rotation
kept in ``_actor`` (``max_num`` regular ones, evicting those without a metric, then the worst metric, then the
oldest; and the one current best), so the state a user resumes from always has its HF copy.

Where the files are: policy rank 0 writes them; the trainer actor that deletes runs wherever Ray placed it.
On one node (the launch scripts' set-up) both see the same disk; across nodes ``--ckpt.path`` must be a shared
file system. When the folder just saved is not visible from the trainer, nothing is deleted and a warning says so.

Upstream's ``train()`` saves the final policy to ``--ckpt.output_dir`` after ``fit`` returns and records no step.
``write_final_marker`` puts ``asym_final_step.json`` there at the end of ``fit`` (so before that save), and
``asym-eval select --final`` reads it to make the final policy a candidate at its step.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

from asym_eval.files import FINAL_MARKER, write_atomic  # the marker asym-eval select --final reads

logger = logging.getLogger(__name__)

# Upstream's names: f"{tag}_hf" with tag f"global_step{N}" or f"best_global_step{N}". Nothing else is deleted.
# Upstream's DeepSpeed states of the policy, one folder per tag (PolicyModelActor.save_checkpoint).
DEEPSPEED_STATES = "_actor"
HF_FOLDER = re.compile(r"(best_)?global_step(\d+)_hf")


def hf_folder_name(step: int, best: bool = False) -> str:
    """The folder upstream saves for ``step``.

    >>> hf_folder_name(40), hf_folder_name(40, best=True)
    ('global_step40_hf', 'best_global_step40_hf')
    """
    return f"{'best_' if best else ''}global_step{step}_hf"


def prune_hf_checkpoints(ckpt_path, saved_step: int, max_num: int, best: bool = False) -> list[Path]:
    """Delete HF copies beyond the bound once upstream has saved the one of ``saved_step``; returns the deleted.

    Keeps ``<tag>_hf`` of the saved step and of every tag whose DeepSpeed state upstream kept in
    ``<ckpt_path>/_actor``; deletes the other copies of earlier steps (regular) or every other best copy
    (``best=True``). Copies of later steps belong to another run in the same ``--ckpt.path`` and are left
    alone. Without an ``_actor`` folder the rule is upstream's count: the newest ``max_num`` regular copies
    (``max_num`` below 1 counts as 1) and one best. The folder just saved is never deleted, and nothing is
    deleted when it is not visible from here.
    """
    ckpt_path = Path(ckpt_path)
    saved = ckpt_path / hf_folder_name(saved_step, best)
    if not saved.is_dir():
        logger.warning(
            "[asym] %s is not visible from this process (policy rank 0 on another node without a shared "
            "--ckpt.path?): HF checkpoints not pruned",
            saved,
        )
        return []
    others = []  # (step, path) of the same kind as the saved one
    for path in ckpt_path.iterdir():
        match = HF_FOLDER.fullmatch(path.name)
        if (
            match
            and bool(match.group(1)) == best
            and path != saved
            and path.is_dir()
            and not path.is_symlink()
        ):
            others.append((int(match.group(2)), path))
    states = ckpt_path / DEEPSPEED_STATES
    if states.is_dir():
        # Mirror upstream's own rotation: keep the HF copy of exactly the DeepSpeed states it kept (it evicts
        # states without a metric, then the worst metric, then the oldest; one best), so a resume from any
        # state finds its HF copy. Copies of later steps belong to another run in the same folder.
        kept = {path.name for path in states.iterdir() if path.is_dir()}
        doomed = [
            path
            for step, path in others
            if (best or step < saved_step) and path.name.removesuffix("_hf") not in kept
        ]
    elif best:
        doomed = [path for _, path in others]
    else:  # no DeepSpeed states to mirror (not upstream's layout): the newest max_num
        older = sorted(item for item in others if item[0] < saved_step)
        doomed = [path for _, path in older[: max(0, len(older) - (max(max_num, 1) - 1))]]
    deleted = []
    for path in doomed:
        try:
            shutil.rmtree(path)
        except OSError as err:  # a full or read-only disk must not stop training; the next save tries again
            logger.warning("[asym] could not delete old HF checkpoint %s: %s", path, err)
            continue
        print(f"[asym] deleted old HF checkpoint {path}", flush=True)
        deleted.append(path)
    return deleted


SAVED_MARKER = "asym_saved_step.json"  # in --ckpt.path: the last step whose checkpoint is complete


def write_saved_marker(ckpt_path, global_step: int) -> Path:
    """Record in ``<ckpt_path>/asym_saved_step.json`` that every rank's checkpoint of ``global_step`` (DeepSpeed
    states and the HF copy) has been written: upstream's save returned on every rank. Atomic. ``asym-rl
    rehearse`` waits for it before killing a run, and a user can read it to know what a resume starts from."""
    folder = Path(ckpt_path)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / SAVED_MARKER
    write_atomic(marker, json.dumps({"global_step": int(global_step)}) + "\n")
    return marker


def read_saved_step(ckpt_path) -> int | None:
    """The step of the last complete checkpoint in ``ckpt_path`` (``write_saved_marker``), or None."""
    try:
        return int(json.loads((Path(ckpt_path) / SAVED_MARKER).read_text(encoding="utf-8"))["global_step"])
    except (OSError, ValueError, KeyError):
        return None


def write_final_marker(output_dir, global_step: int) -> Path:
    """Write ``<output_dir>/asym_final_step.json`` saying the policy saved there after ``fit`` is from step
    ``global_step``; atomically (a temporary file, then a rename)."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / FINAL_MARKER
    record = {
        "global_step": int(global_step),
        "what": "final policy of the run, saved by OpenRLHF's train() to --ckpt.output_dir after fit; "
        "this file is written by AsymPPOTrainer.fit just before that save",
    }
    write_atomic(marker, json.dumps(record, indent=1) + "\n")
    return marker
