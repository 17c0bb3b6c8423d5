"""One run's policy, optimizer, task and random streams (``Trainer``), and one RL step: rollouts and their
scores, advantages from the registry, the clipped-surrogate optimizer steps, the step's metrics."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from asym_openrlhf.algorithms.advantages import (
    beta_metrics,
    compute_advantages,
)
from asym_openrlhf.algorithms.control import BetaController, options_at_step
from asym_openrlhf.algorithms.losses import (
    EntropyAdvantage,
    TokenControl,
    aggregate_loss,
    controlled_token_loss,
    entropy_regularized,
    entropy_shaped_advantages,
    masked_mean,
)
from asym_openrlhf.algorithms.metrics import (
    entropy_by_correctness,
    entropy_pos_neg,
    mean_token_entropy,
    positive_logprob_gain,
    rollout_metrics,
)
from asym_openrlhf.lite.rollout import decode_responses, generate, response_logprobs
from asym_openrlhf.lite.settings import Settings
from asym_openrlhf.lite.tasks import AdditionTask, CountdownTask, MathTask
from asym_openrlhf.lite.tiny import TIERS


class Trainer:
    """The policy, optimizer, task and RNG streams of one run, and one RL step."""

    def __init__(self, settings: Settings):
        self.settings = s = settings
        self.device = torch.device(s.device)
        if self.device.type == "cpu":
            # transformers imports DeepSpeed (where installed) to ask about ZeRO-3 when it saves, and DeepSpeed
            # then warns "Setting accelerator to CPU" once per process: say it is the CPU, so it stays quiet.
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        # One progress display per command (lite's bar, the study's): not transformers' load and save bars.
        transformers_logging.disable_progress_bar()
        if self.device.type == "cpu":
            torch.set_num_threads(s.threads)
        self.tokenizer = AutoTokenizer.from_pretrained(s.model)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(s.model, dtype=getattr(torch, s.dtype)).to(
            self.device
        )
        if s.task == "addition":
            tier = TIERS[s.tier]
            self.task = AdditionTask(tier.max_digits, s.heldout_size)
        elif s.task == "countdown":
            self.task = CountdownTask(s.heldout_size)
        else:
            self.task = MathTask(self.tokenizer, s.heldout_size, timeout_s=s.grade_timeout_s)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=s.lr, weight_decay=0.0)
        # Two seeded streams: prompts and mini-batch order (CPU), token sampling (on the model's device).
        self.data_rng = torch.Generator().manual_seed(s.seed)
        self.sample_rng = torch.Generator(device=self.device).manual_seed(s.seed + 1)
        self.step_count = 0
        self._encode_cache: dict[str, list[int]] = {}
        self.beta_controller = None if s.beta_control is None else BetaController(**s.beta_control)

    def _encode(self, text: str) -> list[int]:
        if text not in self._encode_cache:
            self._encode_cache[text] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self._encode_cache[text]

    def _rollouts(self, prompts: list[str], temperature: float, with_logprobs: bool = False, generator=None):
        self.model.eval()
        return generate(
            self.model,
            [self._encode(p) for p in prompts],
            max_new_tokens=self.settings.max_new_tokens,
            eos_id=self.tokenizer.eos_token_id,
            pad_id=self.tokenizer.pad_token_id,
            temperature=temperature,
            generator=(generator or self.sample_rng) if temperature > 0 else None,
            with_logprobs=with_logprobs,
        )

    def evaluate(self, chunk: int = 256, samples_per_prompt: int | None = None) -> dict[str, float]:
        """Held-out metrics: greedy accuracy on every held-out prompt, and unbiased pass@k for k = 1, 2, 4, ...
        up to n from n samples (``samples_per_prompt``, default G) at the rollout temperature on the first
        ``eval_sampled_prompts`` (exploration shows at large k).

        The samples come from their own generator, seeded by the run's seed and step, so that evaluating
        neither perturbs training's random streams nor depends on when a run was resumed.
        """
        from asym_eval.scoring import pass_at_k_curve

        s, problems = self.settings, self.task.heldout
        greedy = 0.0
        for start in range(0, len(problems), chunk):
            part = problems[start : start + chunk]
            responses = decode_responses(
                self.tokenizer, self._rollouts([p.prompt for p in part], temperature=0.0)
            )
            greedy += sum(self.task.reward(r, p) for r, p in zip(responses, part))
        metrics = {"eval/accuracy": greedy / len(problems)}
        if s.eval_sampled_prompts == 0:
            return metrics

        sampled: list[list[int]] = []  # per prompt, the correctness of its G samples
        rng = torch.Generator(device=self.device).manual_seed(s.seed * 1_000_003 + self.step_count)
        n = samples_per_prompt or s.group_size
        repeated = [p for p in problems[: s.eval_sampled_prompts] for _ in range(n)]
        block = (
            max(1, chunk * s.group_size // n) * n
        )  # whole prompts per generate call, about chunk*G samples
        for start in range(0, len(repeated), block):
            part = repeated[start : start + block]
            batch = self._rollouts([p.prompt for p in part], temperature=s.temperature, generator=rng)
            hits = [
                int(self.task.reward(r, p)) for r, p in zip(decode_responses(self.tokenizer, batch), part)
            ]
            sampled += [hits[i : i + n] for i in range(0, len(hits), n)]
        metrics.update({f"eval/pass_at_{k}": v for k, v in pass_at_k_curve(sampled).items()})
        return metrics

    def step(self) -> dict:
        """One rollout batch and its ``mini_batches`` optimizer steps; returns the step's metrics."""
        s = self.settings
        batch, responses, correct = self._sample_and_score()
        mask = batch.response_mask.float()  # (B, T)
        old_logp, old_entropy = batch.logprobs, batch.entropy  # (B, T) each, from the sampler
        options = options_at_step(s.options, self.step_count, s.steps, self.beta_controller)  # β at this step
        advantages = self._advantages(correct, options)  # (P, G)

        mean_logp = masked_mean(old_logp, mask, dim=1).view(correct.shape).cpu()
        grouped = [responses[i : i + s.group_size] for i in range(0, len(responses), s.group_size)]
        metrics = {
            "rollout/unique_correct_frac": None,  # logged as missing where no group has a correct rollout
            **rollout_metrics(correct, grouped, mean_logp, advantages),
            "rollout/response_length": mask.sum(1).mean().item(),
            "actor/entropy": mean_token_entropy(old_entropy, mask).item(),
            **beta_metrics(s.estimator, options),
            **entropy_pos_neg(entropy_by_correctness(old_entropy, mask, correct.flatten())),
        }
        metrics.update(self._optimize(batch, mask, advantages.flatten().to(self.device)))
        metrics["actor/pos_logprob_gain"] = self._positive_logprob_gain(batch, correct, mask)
        if self.beta_controller is not None:  # this step's entropy sets the next step's β
            self.beta_controller.update(metrics["actor/entropy"])
        self.step_count += 1
        return metrics

    def _sample_and_score(self):
        """G rollouts for each of ``prompts_per_step`` random training prompts, grouped by prompt: the batch,
        the decoded responses and the ``(P, G)`` binary correctness."""
        s = self.settings
        picks = torch.randperm(len(self.task.train), generator=self.data_rng)[: s.prompts_per_step].tolist()
        problems = [self.task.train[i] for i in picks for _ in range(s.group_size)]  # grouped: (P*G,)
        batch = self._rollouts([p.prompt for p in problems], temperature=s.temperature, with_logprobs=True)
        responses = decode_responses(self.tokenizer, batch)
        correct = torch.tensor([self.task.reward(r, p) for r, p in zip(responses, problems)])
        return batch, responses, correct.view(s.prompts_per_step, s.group_size)

    def _advantages(self, correct: torch.Tensor, options) -> torch.Tensor:
        """The registry's advantages of the ``(P, G)`` groups, or a control's (--control_advantages)."""
        advantages = compute_advantages(self.settings.estimator, correct, options)  # (P, G)
        if self.settings.control_advantages == "negate":
            return -advantages
        if self.settings.control_advantages == "shuffle":
            order = torch.randperm(advantages.numel(), generator=self.data_rng)
            return advantages.flatten()[order].view(correct.shape)
        return advantages

    def _optimize(self, batch, mask: torch.Tensor, flat_adv: torch.Tensor) -> dict:
        """``mini_batches`` optimizer steps over the rollout batch in a random order; their mean loss, PPO clip
        fraction and Cov-token fraction."""
        s = self.settings
        self.model.train()
        control = TokenControl(**(s.token_control or {}))
        entropy_adv = EntropyAdvantage(s.entropy_adv_alpha, s.entropy_adv_kappa)
        need_entropy = s.entropy_coef > 0 or entropy_adv.active or control.top_entropy_rho is not None
        order = torch.randperm(len(flat_adv), generator=self.data_rng)
        # Under the plain clipped surrogate a token with advantage 0 has loss 0 and gradient 0, so rows with
        # A = 0 (under GRPO, every row of a group that all passed or all failed) need no forward: they enter the
        # loss as zeros and keep their tokens in its denominator. Token controls and entropy terms depend on
        # every row, so with them every row runs.
        skip_zero_advantage = s.token_control is None and not need_entropy
        parts = []
        for rows in order.chunk(s.mini_batches):
            rows = rows.to(self.device)
            run = flat_adv[rows] != 0 if skip_zero_advantage else torch.ones_like(rows, dtype=torch.bool)
            if not run.any():  # one row gives the step its gradient (zero, as every row's): AdamW still steps
                run[0] = True
            parts.append(
                self._mini_batch_step(batch, mask, flat_adv, rows, run, control, entropy_adv, need_entropy)
            )
        return {
            name: sum(part[index] for part in parts) / len(parts)
            for index, name in enumerate(("actor/policy_loss", "actor/clip_frac", "actor/cov_frac"))
        }

    def _mini_batch_step(self, batch, mask, flat_adv, rows, run, control, entropy_adv, need_entropy):
        """One optimizer step on the rows ``rows`` (of which ``run`` need a forward); its loss, clip fraction and
        Cov-token fraction."""
        s = self.settings
        part_mask = mask[rows]
        # Rows of a group share their prompt: it runs once per distinct prompt (rollout.py says why).
        logp, entropy = response_logprobs(
            self.model, batch.select(rows[run]), with_entropy=need_entropy, share_prompts=True
        )
        token_adv = flat_adv[rows[run]][:, None].expand_as(logp)  # outcome advantage on every token
        if entropy_adv.active:
            token_adv = entropy_shaped_advantages(token_adv, entropy, entropy_adv.alpha, entropy_adv.kappa)
        run_loss, run_clipped, run_cov = controlled_token_loss(
            logp, batch.logprobs[rows[run]], token_adv, part_mask[run], s.eps_low, s.eps_high, control, entropy,
            self.data_rng,
        )  # fmt: skip
        token_loss = torch.zeros_like(part_mask, dtype=run_loss.dtype)  # (mini-batch B, T)
        token_loss[run] = run_loss
        clipped, cov = (
            torch.zeros_like(part_mask, dtype=torch.bool),
            torch.zeros_like(part_mask, dtype=torch.bool),
        )
        clipped[run], cov[run] = run_clipped, run_cov
        loss = aggregate_loss(token_loss, part_mask, s.loss_agg, s.max_new_tokens)
        if s.entropy_coef > 0:
            loss = entropy_regularized(loss, mean_token_entropy(entropy, part_mask), s.entropy_coef)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if s.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.max_grad_norm)
        self.optimizer.step()
        return (
            loss.item(),
            masked_mean(clipped.float(), part_mask).item(),
            masked_mean(cov.float(), part_mask).item(),
        )

    def _positive_logprob_gain(self, batch, correct: torch.Tensor, mask: torch.Tensor) -> float | None:
        """``actor/pos_logprob_gain`` after the update: only correct rollouts enter it, so only they are scored."""
        is_correct = correct.flatten().bool().to(self.device)
        if not is_correct.any():
            return None
        with torch.no_grad():
            new_logp, _ = response_logprobs(self.model, batch.select(is_correct), share_prompts=True)
        ones = torch.ones(int(is_correct.sum()), device=self.device)
        return positive_logprob_gain(new_logp, batch.logprobs[is_correct], mask[is_correct], ones)

    # --- checkpoints: everything a resumed run needs to continue bit-for-bit ---
    def save_checkpoint(self, path: Path) -> None:
        state = {
            "step": self.step_count,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "data_rng": self.data_rng.get_state(),
            "sample_rng": self.sample_rng.get_state(),
            "beta_control": None if self.beta_controller is None else self.beta_controller.state(),
        }
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def load_checkpoint(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.data_rng.set_state(state["data_rng"].cpu())
        self.sample_rng.set_state(state["sample_rng"].cpu())
        self.step_count = state["step"]
        if self.beta_controller is not None:  # a resumed run continues with the β it had
            self.beta_controller.load_state(state["beta_control"])

    def save_policy(self, path: Path) -> None:
        """The final policy as an HF directory (model + tokenizer), written next to ``path`` then renamed."""
        import shutil

        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(tmp)
        self.tokenizer.save_pretrained(tmp)
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
