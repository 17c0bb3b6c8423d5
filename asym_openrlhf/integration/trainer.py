"""``AsymPPOTrainer``: OpenRLHF's PPO trainer with our experience maker and the paper's metrics (SPEC §4).

The experience maker lives inside the trainer's Ray actor, so it is swapped in the trainer's constructor (a
driver-side patch would not reach it). Metrics go into the status dict upstream logs each step, under the
names of ``asym_openrlhf.algorithms.metrics.METRICS`` (shown as ``train/<name>`` by tensorboard / wandb).
"""

from __future__ import annotations

from dataclasses import fields

import ray

from asym_openrlhf.algorithms.advantages import beta_metrics
from asym_openrlhf.algorithms.control import BetaController
from asym_openrlhf.algorithms.losses import masked_mean
from asym_openrlhf.algorithms.metrics import entropy_pos_neg, positive_logprob_gain
from asym_openrlhf.algorithms.metrics import rollout_metrics as batch_rollout_metrics
from asym_openrlhf.integration import weight_sync_check
from asym_openrlhf.integration.checkpoints import prune_hf_checkpoints, write_final_marker, write_saved_marker
from asym_openrlhf.integration.experience_maker import AsymExperienceMaker, regroup
from asym_openrlhf.integration.policy_loss import ENTROPY_PARTS, AsymPolicyModelActor
from asym_openrlhf.integration.upstream import (
    POLICY_ACTOR_OPTIONS,
    PPO_TRAINER_OPTIONS,
    Experience,
    PPOTrainer,
    SamplesGenerator,
)


def rollout_metrics(experiences, group_size: int) -> dict[str, float]:
    """Group-level metrics of one rollout batch (before the update): ``algorithms.metrics.rollout_metrics`` on
    the experiences regrouped by prompt.

    Needs the binary ``scores``; returns ``{}`` when the reward function gave none (an upstream reward model).
    """
    if group_size < 2 or any(experience.scores is None for experience in experiences):
        return {}
    correct = regroup(experiences, lambda e: e.scores, group_size)[0].bool()  # (P, G)
    # Each rollout's response tokens, in prompt-group order. The action mask covers the last A tokens of the
    # sequences, as upstream's Actor.forward reads it (log_probs[:, -A:]).
    responses = {}
    for e in experiences:
        for row, index in enumerate(e.index):
            responses[index] = tuple(
                e.sequences[row, -e.action_mask.shape[1] :][e.action_mask[row].bool()].tolist()
            )
    grouped = [[responses[p * group_size + g] for g in range(group_size)] for p in range(correct.shape[0])]

    # Appendix B: length-normalized log-prob of each rollout against its (rollout-level) advantage.
    def mean_logp(e):
        return masked_mean(e.action_log_probs.float(), e.action_mask, dim=-1)

    def rollout_advantage(e):
        return masked_mean(e.advantages.float(), e.action_mask, dim=-1)

    logp = advantages = None
    if all(e.action_log_probs is not None and e.advantages is not None for e in experiences):
        logp = regroup(experiences, mean_logp, group_size)[0]
        advantages = regroup(experiences, rollout_advantage, group_size)[0]
    return batch_rollout_metrics(correct, grouped, logp, advantages)


# Keys of our entries in upstream's checkpoint client states (saved and restored with them): the entropy
# controller's β, and the generated samples not yet trained.
BETA_CONTROL_STATE = "asym_beta_control"
SAMPLE_BUFFER_STATE = "asym_sample_buffer"


def combined_pass_rate(calls: list[tuple[float | None, int]]) -> float | None:
    """Dynamic filtering's pass rate over several generation calls: each call's ``(rate, prompts consumed)``
    weighted by its prompts, so the rate is accepted / consumed over all of them (None: no call filtered).

    >>> combined_pass_rate([(50.0, 4), (None, 0), (100.0, 2)])
    66.66666666666667
    """
    counted = [(rate, prompts) for rate, prompts in calls if rate is not None and prompts]
    total = sum(prompts for _, prompts in counted)
    return sum(rate * prompts for rate, prompts in counted) / total if total else None


class FullBatchSamplesGenerator(SamplesGenerator):
    """Upstream's samples generator that never hands the trainer a partial rollout batch, and whose leftover
    samples survive a checkpoint.

    Upstream's prompt loader has batch size 1, so an episode ends with whatever is left: MATH train's 7,498
    prompts are 58 x 128 + 74 (Qwen3-4B) or 14 x 512 + 330 (Qwen2.5-Math-1.5B), and upstream's
    ``_collect_prompt_batch`` returns that remainder as a last, short batch. Its micro-batches then split
    unevenly over the DeepSpeed ranks (``RayActorGroup.async_run_method_batch`` deals ceil(n / ranks)), and
    under ZeRO-3, where every forward all-gathers weights across ranks, a rank with fewer micro-batches stops
    taking part: a hang at the end of every episode, and again after a resume into the last batch.

    The remainder is dropped, like a ``drop_last`` loader: the loader reshuffles every episode, so different
    prompts are left out each time (at most one batch's worth per episode; 1% of MATH train for Qwen3-4B).
    Its rollouts were generated before they could be counted, which costs that much generation time.

    A generation batch larger than the rollout batch (``--rollout.vllm_generate_batch_size``), or one topped
    up above, leaves samples in ``_sample_buffer`` whose prompts the loader has already counted. A checkpoint
    keeps them (``buffer_state``, in the client states) and a resumed run trains them first
    (``restore_buffer``): otherwise their prompts would be skipped for the rest of the episode. Keeping them is
    cheaper and closer to an uninterrupted run than never generating past a save step, which would change the
    generation batches upstream asks for.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dropped_samples = 0  # over the run, for the log and the tests
        self._restored_buffer = None  # samples from a checkpoint, trained first after a resume

    def buffer_state(self) -> list[dict]:
        """The buffered samples, each as a dict of its ``Experience`` fields (tensors, lists, numbers)."""
        return [{f.name: getattr(e, f.name) for f in fields(e)} for e in getattr(self, "_sample_buffer", [])]

    def restore_buffer(self, saved: list[dict]) -> None:
        self._restored_buffer = [Experience(**sample) for sample in saved] or None

    def generate_samples(self, **generate_kwargs):
        if self._restored_buffer is not None:
            # fit loads the loader's saved position after the checkpoint states: iterate from there, after the
            # restored samples (upstream would otherwise start a fresh iterator only once the buffer is empty).
            self._dataloader_iter = iter(self.prompts_dataloader)
            self._sample_buffer, self._restored_buffer = self._restored_buffer, None
        full = self.args.rollout.batch_size * self.args.rollout.n_samples_per_prompt
        samples, pass_rate, consumed, exhausted = super().generate_samples(**generate_kwargs)
        calls = [(pass_rate, consumed)]
        # Prompts left but a short buffer (a generation batch that is not a multiple of the rollout batch):
        # give the samples back and generate more, rather than train on a short batch.
        while samples and len(samples) < full and not exhausted:
            self._sample_buffer = samples + self._sample_buffer
            samples, pass_rate, more, exhausted = super().generate_samples(**generate_kwargs)
            calls.append((pass_rate, more))
            consumed += more
        if samples and len(samples) < full:
            self.dropped_samples += len(samples)
            print(
                f"[asym] dropping the last {len(samples)} rollouts of the episode ({len(samples)} < {full} = "
                "--rollout.batch_size x --rollout.n_samples_per_prompt): a partial batch would split unevenly "
                "over the training ranks",
                flush=True,
            )
            samples = []
        return samples, combined_pass_rate(calls), consumed, exhausted


class AsymPPOTrainer(PPOTrainer):
    """Upstream ``PPOTrainer`` (the plain class under its ``@ray.remote``) with ``AsymExperienceMaker`` and
    ``FullBatchSamplesGenerator``."""

    beta_controller = None  # entropy-targeted β (--asym.target_entropy), built in __init__ when asked for

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # BasePPOTrainer.__init__ built a RemoteExperienceMaker; rebuild it as ours from the same parts.
        self.experience_maker = AsymExperienceMaker(
            self.actor_model_group,
            self.critic_model_group,
            self.reward_model_group,
            self.reference_model_group,
            self.kl_ctl,
            self.strategy,
            self.tokenizer,
        )
        self.samples_generator = FullBatchSamplesGenerator(
            strategy=self.strategy,
            prompts_dataloader=self.prompts_dataloader,
            eval_dataloader=self.eval_dataloader,
            tokenizer=self.tokenizer,
            vllm_engines=self.vllm_engines,
        )
        control = getattr(self.args.asym, "beta_control", None)
        self.beta_controller = None if control is None else BetaController(**control)
        self.experience_maker.beta_controller = self.beta_controller  # β at each step: options_at_step
        # Rollout steps of the run (the generator drops each episode's partial batch): a β schedule's length.
        rollout = self.args.rollout
        self.experience_maker.total_steps = max(
            len(self.prompts_dataloader) // rollout.batch_size * self.args.train.num_episodes, 1
        )

    def train_step(self, rollout_samples, global_step):
        maker = self.experience_maker
        maker.step = global_step  # steps done so far: where a β schedule stands
        self._asym_steps_done = global_step + 1  # upstream syncs vLLM inside, after this step's update
        status, global_step = super().train_step(rollout_samples, global_step)
        if self._asym_sync_difference is not None:
            status["actor/weight_sync_logprob_diff"] = self._asym_sync_difference
        return status, global_step

    _asym_steps_done = 0
    _asym_sync_difference = None

    def broadcast_to_vllm(self):
        super().broadcast_to_vllm()
        tolerance = self.args.asym.check_weight_sync
        if tolerance is not None:
            self._asym_sync_difference = difference = self.check_weight_sync(self._asym_steps_done)
            if not difference <= tolerance:
                raise weight_sync_check.WeightSyncError(
                    f"weight sync check failed after step {self._asym_steps_done}: vLLM's log-probs differ from the "
                    f"policy's by up to {difference:.3f} (> --asym.check_weight_sync {tolerance}); the engines may "
                    f"be generating with other weights (details: {self.args.ckpt.path}/{weight_sync_check.LOG_FILE})"
                )

    def check_weight_sync(self, global_step: int) -> float:
        """Greedy continuations of a few training prompts by every engine, against the policy's log-probs of
        the same tokens (asym_openrlhf/integration/weight_sync_check.py); returns the largest difference."""
        prompts = self.prompts_dataloader.dataset.prompts[: weight_sync_check.CHECK_PROMPTS]
        prompt_ids, params = weight_sync_check.greedy_requests(
            self.tokenizer, prompts, self.args.rollout.max_new_tokens
        )
        requests = [(engine, ids) for engine in range(len(self.vllm_engines)) for ids in prompt_ids]
        outputs = ray.get(
            [self.vllm_engines[engine].generate.remote(ids, params) for engine, ids in requests]
        )
        tokens, vllm_logprobs = zip(*map(weight_sync_check.chosen_logprobs, outputs))
        sequences, attention_mask, action_mask = weight_sync_check.policy_batch(
            [ids for _, ids in requests], list(tokens), self.tokenizer.pad_token_id
        )
        # Every rank takes part (ZeRO-3 gathers each layer's weights across ranks); they return the same values.
        policy_logprobs = ray.get(
            self.actor_model_group.async_run_method(
                method_name="weight_sync_log_probs",
                sequences=sequences,
                action_mask=action_mask,
                attention_mask=attention_mask,
            )
        )[0]
        difference = weight_sync_check.max_abs_difference(list(vllm_logprobs), policy_logprobs)
        weight_sync_check.append_record(
            self.args.ckpt.path,
            {
                "global_step": global_step,
                "max_abs_logprob_diff": difference,
                "engines": len(self.vllm_engines),
                "prompts": prompts,
                "vllm_tokens": [list(t) for t in tokens],
                "vllm_logprobs": [list(v) for v in vllm_logprobs],
                "policy_logprobs": [
                    policy_logprobs[row, : len(values)].tolist() for row, values in enumerate(vllm_logprobs)
                ],
            },
        )
        return difference

    def init_checkpoint_states(self):
        states = super().init_checkpoint_states()
        self._asym_steps_done = states.get("global_step", 0)  # a resumed run syncs vLLM before its first step
        if self.beta_controller is not None and BETA_CONTROL_STATE in states:
            self.beta_controller.load_state(states[BETA_CONTROL_STATE])  # a resumed run keeps the β it had
        if states.get(SAMPLE_BUFFER_STATE):
            self.samples_generator.restore_buffer(states[SAMPLE_BUFFER_STATE])
        return states

    def _compute_rollout_stats(self, experiences):
        stats = super()._compute_rollout_stats(experiences)
        stats.update(rollout_metrics(experiences, self.args.rollout.n_samples_per_prompt))
        maker = self.experience_maker
        if maker.latest_options is not None:  # our estimator ran: the β it used
            stats.update(beta_metrics(self.args.asym.estimator, maker.latest_options))
        return stats

    def ppo_train(self, global_steps):
        status = super().ppo_train(global_steps)
        if self.beta_controller is not None:  # this step's entropy sets the next step's β
            self.beta_controller.update(status.get("actor/entropy"))
        # actor/entropy comes from the policy actors (policy_loss.install_token_entropy), as the exact token
        # mean; upstream's entropy_loss is loss-normalised and is left under its own name. The correct / wrong
        # split arrives as added-up sums and token counts.
        parts = {
            name[len(ENTROPY_PARTS) :]: status.pop(name)
            for name in list(status)
            if name.startswith(ENTROPY_PARTS)
        }
        if parts:
            status.update({k: v for k, v in entropy_pos_neg(parts).items() if v is not None})
        if self.args.asym.log_pos_logprob_gain and "policy_loss" in status:
            gain = self.positive_logprob_gain(self.experience_maker.latest_experiences)
            if gain is not None:
                status["actor/pos_logprob_gain"] = gain
        return status

    def positive_logprob_gain(self, experiences) -> float | None:
        """E[log π_new(y) - log π_old(y)] over correct rollouts: one more actor forward over the batch."""
        if not experiences or any(e.scores is None for e in experiences):
            return None
        maker = self.experience_maker
        duplicate_factor = self.args.ds.ring_attn_size * self.args.ds.tensor_parallel_size
        refs = maker._dispatch_forward(
            self.actor_model_group,
            self.args.train.colocate_all or self.args.train.colocate_actor_ref,
            sequences=[e.sequences for e in experiences],
            action_mask=[e.action_mask for e in experiences],
            attention_mask=[e.attention_mask for e in experiences],
        )
        new_log_probs = maker._flatten_results(refs, duplicate_factor)
        total, count = 0.0, 0
        for experience, new in zip(experiences, new_log_probs):
            gain = positive_logprob_gain(
                new, experience.action_log_probs, experience.action_mask, experience.scores
            )
            if gain is not None:  # a mean over this micro-batch's correct rollouts: weight it by their number
                num_correct = int(experience.scores.bool().sum())
                total, count = total + gain * num_correct, count + num_correct
        return total / count if count else None

    # Checkpoints (asym_openrlhf/integration/checkpoints.py): upstream's HF copies are bounded to --ckpt.max_num
    # regular ones plus the current best, and the final policy's step is recorded for `asym-eval select`.
    def save_logs_and_checkpoints(self, global_step, logs_dict=None, client_states=None):
        if client_states is not None:
            # fit hands the same dict to the best-checkpoint save: both checkpoints carry these.
            if self.beta_controller is not None:
                client_states[BETA_CONTROL_STATE] = self.beta_controller.state()
            client_states[SAMPLE_BUFFER_STATE] = self.samples_generator.buffer_state()
        super().save_logs_and_checkpoints(global_step, logs_dict, client_states)
        self._asym_last_step = global_step  # fit calls this after every step: the last one is the final step
        ckpt = self.args.ckpt
        if global_step % ckpt.save_steps == 0:  # upstream's condition: every rank saved, and it waited
            if ckpt.save_hf:
                prune_hf_checkpoints(ckpt.path, global_step, ckpt.max_num)
            write_saved_marker(ckpt.path, global_step)

    def save_best_checkpoint(self, eval_metrics, global_step, client_states=None):
        previous_best = self.best_eval_metric_value
        super().save_best_checkpoint(eval_metrics, global_step, client_states)
        # Upstream saves best_global_step<N> exactly when the value rose.
        if self.args.ckpt.save_hf and self.best_eval_metric_value > previous_best:
            prune_hf_checkpoints(self.args.ckpt.path, global_step, self.args.ckpt.max_num, best=True)

    def fit(self, global_step: int = 0) -> None:
        self._asym_last_step = None
        super().fit(global_step)
        # train() saves the policy to --ckpt.output_dir right after this returns. No step ran (a resumed run
        # that was already done): the marker of the run that trained it stays.
        if self._asym_last_step is not None:
            write_final_marker(self.args.ckpt.output_dir, self._asym_last_step)


def _as_ray_actor(cls, options: dict):
    """``cls`` as a Ray actor class with the resource options upstream's decorator used."""
    return ray.remote(**options)(cls) if options else ray.remote(cls)


# The Ray actor classes the launcher hands to upstream's train().
AsymPPOTrainerRayActor = _as_ray_actor(AsymPPOTrainer, PPO_TRAINER_OPTIONS)
AsymPolicyModelRayActor = _as_ray_actor(AsymPolicyModelActor, POLICY_ACTOR_OPTIONS)
