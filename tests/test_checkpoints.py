"""The disk bound on OpenRLHF's HF checkpoint copies, and the final policy's step marker
(``asym_openrlhf/integration/checkpoints.py``, hooked into ``AsymPPOTrainer``).

The trainer tests run upstream's own ``save_logs_and_checkpoints`` / ``save_best_checkpoint``; only the policy
actors are faked: they create ``<tag>_hf`` and ``_actor/<tag>`` the way ``PolicyModelActor.save_checkpoint`` does.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import upstream_support  # noqa: E402

upstream_support.install()

from asym_eval import select as select_module  # noqa: E402

from asym_openrlhf.integration import checkpoints  # noqa: E402
from asym_openrlhf.integration import trainer as trainer_module  # noqa: E402
from asym_openrlhf.integration.upstream import PolicyModelActor, PPOTrainer, ppo_trainer_module  # noqa: E402


def make_tree(root: Path, names: list[str]) -> Path:
    """Folders ``names`` under ``root``, each with a config.json."""
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "config.json").write_text("{}")
    return root


def listing(root: Path) -> set[str]:
    return {path.name for path in root.iterdir()}


UNRELATED = ["_critic", "global_step20", "my_global_step20_hf", "global_step20_hf_old", "notes"]

PRUNE_CASES = [
    # (existing HF folders, saved step, max_num, best, expected deleted)
    (["global_step20_hf", "global_step40_hf", "global_step60_hf"], 60, 2, False, {"global_step20_hf"}),
    (["global_step20_hf", "global_step40_hf", "global_step60_hf"], 60, 3, False, set()),
    (
        ["global_step20_hf", "global_step40_hf", "global_step60_hf"],
        60,
        1,
        False,
        {"global_step20_hf", "global_step40_hf"},
    ),
    (["global_step20_hf", "global_step40_hf"], 40, 0, False, {"global_step20_hf"}),  # max_num < 1 counts as 1
    # Best copies neither count nor go with the regular rotation.
    (["best_global_step10_hf", "global_step20_hf", "global_step40_hf"], 40, 1, False, {"global_step20_hf"}),
    # A later step belongs to another run in the same --ckpt.path: left alone.
    (["global_step20_hf", "global_step40_hf", "global_step200_hf"], 40, 1, False, {"global_step20_hf"}),
    # A new best removes every other best copy (as upstream does in _actor), none of the regular ones.
    (
        ["best_global_step10_hf", "best_global_step90_hf", "global_step20_hf", "best_global_step30_hf"],
        30,
        1,
        True,
        {"best_global_step10_hf", "best_global_step90_hf"},
    ),
]


@pytest.mark.parametrize("existing, saved, max_num, best, expected", PRUNE_CASES)
def test_prune_deletes_only_upstream_named_copies_beyond_the_bound(
    tmp_path, existing, saved, max_num, best, expected
):
    make_tree(tmp_path, existing + UNRELATED)  # no _actor folder: the count rule
    (tmp_path / "global_step5_hf").write_text("a file, not a folder")
    (tmp_path / "global_step6_hf").symlink_to(tmp_path / "notes")
    deleted = checkpoints.prune_hf_checkpoints(tmp_path, saved, max_num, best=best)
    assert {path.name for path in deleted} == expected
    assert listing(tmp_path) == set(existing + UNRELATED + ["global_step5_hf", "global_step6_hf"]) - expected
    assert (tmp_path / "notes" / "config.json").is_file()


def test_prune_keeps_the_hf_copy_of_every_deepspeed_state_upstream_kept(tmp_path):
    """Upstream's rotation of ``_actor`` evicts states without a metric, then the worst metric, then the oldest:
    here it kept steps 20 and 50 (the best metrics) over the newer 40. The HF copies follow it, so a resume
    from any kept state finds its HF copy; the newest-first count would have deleted step 20's."""
    make_tree(tmp_path, ["global_step20_hf", "global_step40_hf", "global_step50_hf", "global_step60_hf"])
    make_tree(tmp_path, ["_actor/global_step20", "_actor/global_step50", "_actor/global_step60"])
    make_tree(tmp_path, ["best_global_step10_hf", "best_global_step50_hf", "_actor/best_global_step50"])
    deleted = checkpoints.prune_hf_checkpoints(tmp_path, 60, 2)
    assert {path.name for path in deleted} == {"global_step40_hf"}
    deleted = checkpoints.prune_hf_checkpoints(tmp_path, 50, 2, best=True)
    assert {path.name for path in deleted} == {"best_global_step10_hf"}
    assert {n for n in listing(tmp_path) if n.endswith("_hf")} == {
        f"{tag}_hf" for tag in listing(tmp_path / "_actor")
    }


def test_nothing_is_deleted_when_the_saved_folder_is_not_visible(tmp_path, caplog):
    make_tree(tmp_path, ["global_step20_hf", "global_step40_hf"])
    with caplog.at_level(logging.WARNING):
        assert checkpoints.prune_hf_checkpoints(tmp_path, 60, 1) == []
    assert listing(tmp_path) == {"global_step20_hf", "global_step40_hf"}
    assert "global_step60_hf is not visible" in caplog.text
    assert (
        checkpoints.prune_hf_checkpoints(tmp_path / "elsewhere", 60, 1) == []
    )  # --ckpt.path not here at all


class FakePolicyGroup:
    """Saves like ``PolicyModelActor.save_checkpoint`` with --ckpt.save_hf: ``_actor/<tag>`` and ``<tag>_hf``,
    rotating ``_actor`` by the rule of upstream's ``DeepspeedStrategy.save_ckpt`` (a new best replaces the old
    one; regular states beyond ``max_num``: no metric first, then the worst metric, then the oldest)."""

    def __init__(self, ckpt_path: Path, max_num: int):
        self.ckpt_path, self.max_num, self.tags, self.metrics = ckpt_path, max_num, [], {}

    def eviction_order(self, tag):
        metric = self.metrics[tag]
        return (metric is not None, float("-inf") if metric is None else metric, self.tags.index(tag))

    def async_run_method(self, method_name, tag, metric_value=None, **kwargs):
        assert method_name == "save_checkpoint"
        states = self.ckpt_path / "_actor"
        kept = [t for t in self.tags if (states / t).is_dir()]
        if tag.startswith("best"):
            for old in (t for t in kept if t.startswith("best")):
                shutil.rmtree(states / old)
        else:
            regular = [t for t in kept if not t.startswith("best")]
            while len(regular) >= self.max_num:
                evicted = min(regular, key=self.eviction_order)
                shutil.rmtree(states / evicted)
                regular.remove(evicted)
        self.tags.append(tag)
        self.metrics[tag] = metric_value
        make_tree(self.ckpt_path, [f"_actor/{tag}", f"{tag}_hf"])
        return []


def make_trainer(tmp_path: Path, monkeypatch, save_hf=True, max_num=2):
    monkeypatch.setattr(ppo_trainer_module, "ray", SimpleNamespace(get=lambda refs: refs))  # saves are done
    trainer = object.__new__(trainer_module.AsymPPOTrainer)  # skip __init__: only the checkpoint code runs
    trainer.args = SimpleNamespace(
        ckpt=SimpleNamespace(
            path=str(tmp_path / "ckpt"),
            output_dir=str(tmp_path / "final"),
            save_hf=save_hf,
            save_steps=20,
            max_num=max_num,
        ),
        logger=SimpleNamespace(logging_steps=1),
    )
    trainer.wandb_logger = trainer.tensorboard_logger = None
    trainer.critic_model_group = None
    trainer.actor_model_group = FakePolicyGroup(tmp_path / "ckpt", max_num)
    trainer.samples_generator = SimpleNamespace(buffer_state=lambda: [])
    trainer.best_eval_metric_key = "eval_math500_pass1"
    trainer.best_eval_metric_value = float("-inf")
    trainer._latest_eval_metric_value = None
    return trainer


def hf_folders(ckpt: Path) -> list[str]:
    return sorted(name for name in listing(ckpt) if name.endswith("_hf")) if ckpt.is_dir() else []


# MATH-500 accuracy at the eval steps (every 10) of the simulated run: new bests at 10, 20, 40 and 70.
EVAL = {10: 0.50, 20: 0.55, 30: 0.52, 40: 0.60, 50: 0.58, 60: 0.60, 70: 0.61, 80: 0.40, 90: 0.59, 100: 0.2}


def test_a_run_keeps_max_num_regular_copies_and_the_current_best(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, monkeypatch)
    ckpt = tmp_path / "ckpt"

    def upstream_fit(self, global_step=0):  # the save/eval calls of PPOTrainer.fit's loop
        for step in range(1, 107):
            self.save_logs_and_checkpoints(step, {}, {"global_step": step})
            if step in EVAL:
                self.save_best_checkpoint({"eval_math500_pass1": EVAL[step]}, step, {"global_step": step})
            regular = [n for n in hf_folders(ckpt) if not n.startswith("best")]
            best = [n for n in hf_folders(ckpt) if n.startswith("best")]
            assert len(regular) <= 2 and len(best) <= 1, step  # the bound holds after every save
            if step % 20 == 0:
                assert f"global_step{step}_hf" in regular  # the newest is never deleted

    monkeypatch.setattr(PPOTrainer, "fit", upstream_fit)
    trainer.fit()
    assert hf_folders(ckpt) == ["best_global_step70_hf", "global_step100_hf", "global_step80_hf"]
    assert "best_global_step70" in trainer.actor_model_group.tags  # upstream's own tags, from its own code
    # The HF copies are exactly those of the DeepSpeed states upstream's rotation kept.
    assert set(hf_folders(ckpt)) == {f"{tag}_hf" for tag in listing(ckpt / "_actor")}
    marker = json.loads((tmp_path / "final" / checkpoints.FINAL_MARKER).read_text())
    assert marker["global_step"] == 106  # past the last multiple of --ckpt.save_steps


def test_nothing_is_pruned_without_save_hf_and_a_run_with_no_step_keeps_the_old_marker(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, monkeypatch, save_hf=False)
    make_tree(tmp_path / "ckpt", ["global_step20_hf", "global_step40_hf"])
    trainer.save_logs_and_checkpoints(60)
    trainer.save_best_checkpoint({"eval_math500_pass1": 0.9}, 60)
    assert "global_step20_hf" in listing(tmp_path / "ckpt")
    checkpoints.write_final_marker(tmp_path / "final", 40)
    monkeypatch.setattr(PPOTrainer, "fit", lambda self, global_step=0: None)  # a resumed run that was done
    trainer.fit()
    assert json.loads((tmp_path / "final" / checkpoints.FINAL_MARKER).read_text())["global_step"] == 40


def test_no_new_best_deletes_no_best_copy(tmp_path, monkeypatch):
    # Resumed from step 20 with the best (0.6) at 30: a crashed attempt left best_global_step40_hf behind.
    trainer = make_trainer(tmp_path, monkeypatch)
    trainer.best_eval_metric_value = 0.6
    make_tree(tmp_path / "ckpt", ["best_global_step30_hf", "best_global_step40_hf"])
    trainer.save_best_checkpoint({"eval_math500_pass1": 0.5}, 40)
    assert hf_folders(tmp_path / "ckpt") == ["best_global_step30_hf", "best_global_step40_hf"]
    trainer.save_best_checkpoint({"eval_math500_pass1": 0.7}, 50)
    assert hf_folders(tmp_path / "ckpt") == ["best_global_step50_hf"]


def test_marker_is_read_by_select(tmp_path):
    assert checkpoints.FINAL_MARKER == select_module.FINAL_MARKER
    checkpoints.write_final_marker(tmp_path / "final", 117)
    (tmp_path / "final" / "config.json").write_text("{}")  # upstream's save_model, after the marker
    assert select_module.read_final(tmp_path / "final") == (117, tmp_path / "final")
    assert not list((tmp_path / "final").glob("*.tmp"))


def test_upstream_still_saves_the_way_checkpoints_py_assumes():
    """Pins the 0.11.2 behaviour read off upstream's code; an upgrade that changes it fails here."""
    policy_save = inspect.getsource(PolicyModelActor.save_checkpoint)
    assert 'os.path.join(args.ckpt.path, f"{tag}_hf")' in policy_save
    assert 'os.path.join(args.ckpt.path, "_actor")' in policy_save
    regular_save = inspect.getsource(PPOTrainer.save_logs_and_checkpoints)
    assert 'tag = f"global_step{global_step}"' in regular_save and "ray.get(refs)" in regular_save
    best_save = inspect.getsource(PPOTrainer.save_best_checkpoint)
    assert 'tag = f"best_global_step{global_step}"' in best_save and "ray.get(refs)" in best_save
    train = inspect.getsource(importlib.import_module("openrlhf.cli.train_ppo_ray").train)
    assert train.index("ppo_trainer.fit.remote()") < train.index("actor_model.async_save_model()")
    for name in ("save_logs_and_checkpoints", "save_best_checkpoint", "fit"):
        ours = inspect.signature(getattr(trainer_module.AsymPPOTrainer, name))
        assert list(ours.parameters) == list(inspect.signature(getattr(PPOTrainer, name)).parameters), name
