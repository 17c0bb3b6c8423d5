"""``actor/entropy`` on the OpenRLHF path is the exact token mean of the step's response tokens (paper Eq. 3).

(a) ``token_entropy_no_grad`` against closed forms; (b) upstream's real ``ActorPPOTrainer.ppo_train`` and
``training_step``, built the way ``AsymPolicyModelActor.init_model_from_pretrained`` builds them, on a tiny
real ``openrlhf.models.Actor`` with micro-batches of unequal token counts: the logged value is the hand-computed
token mean, and upstream's ``entropy_loss`` is not; (c) the same with ``--ds.packing_samples``, for real (HF's
sdpa attention runs packed samples on a CPU: it reads the sample boundaries off the position ids); (d) Entropy
Advantage gets what upstream's ``return_entropy`` gives; (e) the entropy adds nothing saved for backward.

To run upstream's trainer on a CPU, four things are replaced (line numbers: openrlhf 0.11.2):
  * ``CpuStrategy`` for ``DeepspeedStrategy``: ``ppo_train`` reads ``strategy.ring_attn_group``, ``is_rank_0()``,
    ``accumulated_gradient``, ``all_reduce`` (trainer/ray/ppo_actor.py l.159, 179, 188, 212) and
    ``training_step`` calls ``backward``, ``optimizer_step``, ``get_grad_norm`` (l.355, 360, 381); here they
    are single-process torch (the optimizer has lr 0, so every micro-batch sees the same weights);
  * ``torch.cuda.current_device``: "cpu" for ``ppo_train``'s ``experience.to_device(device)`` (l.171); 0 while
    the trainer is built, because ``NaiveReplayBuffer.__init__`` formats it into ``cuda:N``
    (trainer/ppo_utils/replay_buffer.py l.40; used only by ``sample()``, which ``ppo_train`` never calls);
  * ``torch_dist_barrier_and_cuda_sync`` at the end of ``ActorPPOTrainer.__init__`` (l.106): a no-op, there
    is no process group;
  * ``flash_attn.ops.triton.cross_entropy`` is made unimportable (the kernel placeholder does it too): its
    Triton kernel imports on a CPU but needs CUDA, and ``log_probs_from_logits`` (models/utils.py l.180-184)
    takes its plain-torch path only on ImportError.
The actor is ``Actor(model)`` on an fp32 model object (``param_dtype`` only takes bf16 / fp16); that branch of
``Actor.__init__`` leaves out what its path branch sets (models/actor.py l.210, 217), so the test sets
``use_cache = False`` and ``packing_samples`` the same way.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import upstream_support  # noqa: E402

upstream_support.install()

from openrlhf.models import Actor  # noqa: E402
from transformers import Qwen2Config, Qwen2ForCausalLM  # noqa: E402

from asym_openrlhf.algorithms.metrics import entropy_pos_neg, token_entropy_no_grad  # noqa: E402
from asym_openrlhf.cli.train_ppo_ray import resolve_config  # noqa: E402
from asym_openrlhf.integration.policy_loss import (  # noqa: E402
    ENTROPY_PARTS,
    AsymPolicyLoss,
    AsymPolicyModelActor,
)
from asym_openrlhf.integration.upstream import (  # noqa: E402
    ActorPPOTrainer,
    Experience,
    PolicyModelActor,
    ppo_actor_module,
)

VOCAB, TEMPERATURE, PROMPT_WIDTH = 40, 0.7, 4
# Response lengths 1 / 3 / 20 / 6: the doc's 100 / 300 / 2000 / 600 scaled down (entropy 1 everywhere would
# log entropy_loss = 4 * (1 + 9 + 400 + 36) / 30^2 = 1.98 with one sample per micro-batch).
PROMPT_LENGTHS, RESPONSE_LENGTHS = (2, 4, 3, 1), (1, 3, 20, 6)
SCORES = (1, 0, 1, 0)  # correct: the 1- and 20-token responses; wrong: the 3- and 6-token ones


# (a) ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "logits,expected",
    [
        (torch.zeros(3, 5), [math.log(5)] * 3),  # uniform over V = 5: H = log 5
        (torch.tensor([[60.0, 0.0, 0.0, 0.0]]), [0.0]),  # one-hot-ish: H ~ 0
        (torch.tensor([[2.0, 2.0, -1e4]]), [math.log(2)]),  # two-way 50/50: log 2
    ],
)
def test_no_grad_entropy_closed_forms(logits, expected):
    assert token_entropy_no_grad(logits).tolist() == pytest.approx(expected, abs=1e-5)


def test_no_grad_entropy_chunked_equals_unchunked_and_keeps_no_graph():
    logits = torch.randn(3, 7, 11, generator=torch.Generator().manual_seed(0), requires_grad=True) * 3
    whole = token_entropy_no_grad(logits, chunk_rows=10**6)
    for chunk_rows in (1, 4, 20):  # 21 rows: chunks that divide them, that do not, and one past the end
        assert torch.equal(token_entropy_no_grad(logits, chunk_rows=chunk_rows), whole)
    assert whole.shape == (3, 7) and not whole.requires_grad
    # the same numbers as the textbook -Σ p log p
    probs = torch.softmax(logits.detach(), -1)
    assert torch.allclose(whole, -(probs * probs.log()).sum(-1), atol=1e-5)


# The CPU run of upstream's trainer ------------------------------------------------------------------------------


class CpuStrategy:
    """What ``ppo_train`` and ``training_step`` call on their ``DeepspeedStrategy``, as single-process torch."""

    ring_attn_group = None

    def __init__(self, args):
        self.args = args
        self.accumulated_gradient = args.train.batch_size // args.train.micro_batch_size

    def is_rank_0(self):
        return True

    def all_reduce(self, data, op="mean"):
        return data  # one rank: its value is the mean and the sum over ranks

    def backward(self, loss, model, optimizer):
        loss.backward()

    def optimizer_step(self, optimizer, model, scheduler, name=None):
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()

    def get_grad_norm(self, model):
        return 0.0


@pytest.fixture
def on_cpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "flash_attn.ops.triton.cross_entropy", None)
    monkeypatch.setattr(ppo_actor_module, "torch_dist_barrier_and_cuda_sync", lambda: None)
    return monkeypatch


def tiny_model():
    config = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        tie_word_embeddings=False,
        attn_implementation="sdpa",
        use_cache=False,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight.mul_(24.0)  # sharp, position-dependent distributions: entropies ~0.1 to ~2.5
    return model


def launch_args(*flags):
    argv = [
        *upstream_support.LAUNCH_ARGV,
        "--advantage_estimator",
        "group_norm",
        "--train.batch_size",
        "4",
        "--actor.num_gpus_per_node",
        "1",
    ]  # one rank: this test builds one actor in-process
    argv += ["--vllm.num_engines", "1"]  # upstream accepts --ds.packing_samples only with vLLM engines
    return resolve_config([*argv, "--rollout.temperature", str(TEMPERATURE), *flags])


def build_policy_actor(monkeypatch, args, model):
    """``AsymPolicyModelActor.init_model_from_pretrained`` over upstream's real ``ActorPPOTrainer``."""

    def upstream_init(self, strategy, pretrain, max_steps=None, vllm_engines=None):
        actor = Actor(model, temperature=strategy.args.rollout.temperature)
        actor.packing_samples = strategy.args.ds.packing_samples
        optimizer = torch.optim.SGD(actor.parameters(), lr=0.0)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        with monkeypatch.context() as building:
            building.setattr(torch.cuda, "current_device", lambda: 0)
            self.trainer = ActorPPOTrainer(
                strategy,
                actor,
                ema_model=None,
                actor_optim=optimizer,
                actor_scheduler=scheduler,
                micro_train_batch_size=strategy.args.train.micro_batch_size,
            )

    monkeypatch.setattr(PolicyModelActor, "init_model_from_pretrained", upstream_init)
    policy_actor = object.__new__(AsymPolicyModelActor)  # the plain class under the Ray actor
    policy_actor.init_model_from_pretrained(CpuStrategy(args), "tiny")
    return policy_actor.trainer


def rollout_batch():
    """Four samples as the experience maker hands them over: prompts left-padded to one width, responses of
    unequal lengths right-padded (token 0 is padding)."""
    generator = torch.Generator().manual_seed(1)
    width = max(RESPONSE_LENGTHS)
    rows, prompts, responses = [], [], []
    for prompt_len, response_len in zip(PROMPT_LENGTHS, RESPONSE_LENGTHS):
        prompt = torch.randint(1, VOCAB, (prompt_len,), generator=generator)
        response = torch.randint(1, VOCAB, (response_len,), generator=generator)
        left_pad = torch.zeros(PROMPT_WIDTH - prompt_len, dtype=torch.long)
        right_pad = torch.zeros(width - response_len, dtype=torch.long)
        rows.append(torch.cat([left_pad, prompt, response, right_pad]))
        prompts.append(prompt)
        responses.append(response)
    sequences = torch.stack(rows)  # (B, PROMPT_WIDTH + width)
    action_mask = torch.stack([torch.arange(width) < n for n in RESPONSE_LENGTHS])  # (B, width)
    experience = Experience(
        sequences=sequences,
        attention_mask=(sequences != 0).long(),
        action_mask=action_mask,
        action_log_probs=torch.zeros(action_mask.shape),
        advantages=torch.where(action_mask, 1.0, 0.0) * torch.tensor([[1.0], [-1.0], [0.5], [-0.5]]),
        scores=torch.tensor(SCORES, dtype=torch.float),
        response_length=torch.tensor(RESPONSE_LENGTHS, dtype=torch.float),
        total_length=torch.tensor(
            [p + r for p, r in zip(PROMPT_LENGTHS, RESPONSE_LENGTHS)], dtype=torch.float
        ),
    )
    return experience, prompts, responses


def hand_entropies(model, prompts, responses):
    """Per sample, the entropies of the policy at each response token: one unpadded forward per sample,
    logits / temperature, H = -Σ p log p at the positions that predict the response tokens."""
    out = []
    with torch.no_grad():
        for prompt, response in zip(prompts, responses):
            logits = model(torch.cat([prompt, response])[None]).logits[0] / TEMPERATURE  # (L, V)
            log_p = torch.log_softmax(logits, -1)
            entropy = -(log_p.exp() * log_p).sum(-1)
            out.append(entropy[len(prompt) - 1 : -1])  # position t predicts token t + 1
    return out


# (b), (c) --------------------------------------------------------------------------------------------------------

TRAINING_RUNS = {
    # name: (--ds.packing_samples, samples per micro-batch, --actor.entropy_coef)
    "upstream entropy_loss, one sample per micro-batch": (False, 1, 0.001),
    "no entropy_coef, two per micro-batch": (False, 2, None),
    "packed, two per micro-batch": (True, 2, None),
    "packed, upstream entropy_loss": (True, 1, 0.001),
}


@pytest.mark.parametrize("packing,micro_batch,entropy_coef", TRAINING_RUNS.values(), ids=TRAINING_RUNS.keys())
def test_logged_entropy_is_the_token_mean_over_the_step(on_cpu, packing, micro_batch, entropy_coef):
    flags = ["--train.micro_batch_size", str(micro_batch), *["--ds.packing_samples"] * packing]
    if entropy_coef is not None:
        flags += ["--actor.entropy_coef", str(entropy_coef)]
    args = launch_args(*flags)
    model = tiny_model()
    trainer = build_policy_actor(on_cpu, args, model)
    experience, prompts, responses = rollout_batch()
    trainer.replay_buffer.append(experience)

    on_cpu.setattr(torch.cuda, "current_device", lambda: "cpu")
    torch.manual_seed(0)  # ppo_train shuffles the micro-batches
    status = trainer.ppo_train(0.0)

    per_sample = hand_entropies(model, prompts, responses)
    sums = [float(h.sum()) for h in per_sample]
    token_mean = sum(sums) / sum(RESPONSE_LENGTHS)
    # Far from uniform (log 40 = 3.7) and varying by token: a wrong token or position would show.
    assert 0.5 < token_mean < 2.5 and float(torch.cat(per_sample).std()) > 0.3
    assert status["actor/entropy"] == pytest.approx(token_mean, rel=1e-5)

    # The correct / wrong split, combined the way AsymPPOTrainer.ppo_train combines the actors' parts.
    parts = {k[len(ENTROPY_PARTS) :]: v for k, v in status.items() if k.startswith(ENTROPY_PARTS)}
    split = entropy_pos_neg(parts)
    for side, want in (("pos", 1), ("neg", 0)):
        rows = [i for i, score in enumerate(SCORES) if score == want]
        mean = sum(sums[i] for i in rows) / sum(RESPONSE_LENGTHS[i] for i in rows)
        assert split[f"actor/entropy_{side}"] == pytest.approx(mean, rel=1e-5), side
    if entropy_coef is None:
        assert "entropy_loss" not in status  # upstream computed no entropy: ours came from the logits
    else:
        # Upstream's entropy_loss with one sample per micro-batch and gas 4: sample i's sum is divided by
        # total tokens / 4, then weighted by its n_i tokens: Σ_i (4·S_i / N)·n_i / N, about 2x the token mean.
        total = sum(RESPONSE_LENGTHS)
        inflated = sum(4 * s / total * n for s, n in zip(sums, RESPONSE_LENGTHS)) / total
        assert status["entropy_loss"] == pytest.approx(inflated, rel=1e-4)
        assert status["entropy_loss"] / status["actor/entropy"] > 1.5


# (d) -------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("packing", [False, True], ids=["padded", "packed"])
def test_entropy_advantage_gets_upstreams_return_entropy(on_cpu, packing):
    args = launch_args(
        "--train.micro_batch_size", "4", "--entropy_adv.alpha", "0.4", *["--ds.packing_samples"] * packing
    )
    assert args.actor.entropy_coef is None  # the launcher no longer asks upstream for the entropy
    trainer = build_policy_actor(on_cpu, args, tiny_model())
    assert isinstance(trainer.actor_loss_fn, AsymPolicyLoss)
    received = []
    loss_forward = AsymPolicyLoss.forward

    def spy(self, *inputs, **kwargs):
        received.append(self.token_entropy)
        return loss_forward(self, *inputs, **kwargs)

    on_cpu.setattr(AsymPolicyLoss, "forward", spy)
    experience, _, _ = rollout_batch()
    trainer.training_step(experience, 0.0, 0, None)

    # What upstream's return_entropy path computes on the same inputs (lr 0: the same weights).
    with torch.no_grad():
        _, output = trainer.actor(
            experience.sequences,
            experience.action_mask,
            attention_mask=experience.attention_mask,
            return_output=True,
            return_entropy=True,
        )
    (entropy,) = received
    assert entropy.shape == output.entropy.shape == (4, experience.sequences.shape[1] - 1)
    assert not entropy.requires_grad
    assert torch.allclose(entropy, output.entropy, atol=1e-5)


# (e) -------------------------------------------------------------------------------------------------------------


def saved_for_backward(actor, experience, return_entropy: bool) -> int:
    """Elements autograd keeps for backward during one training forward."""
    saved = []

    def pack(tensor):
        saved.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        actor(
            experience.sequences,
            experience.action_mask,
            attention_mask=experience.attention_mask,
            return_output=True,
            return_entropy=return_entropy,
        )
    return sum(saved)


def test_the_entropy_keeps_nothing_for_backward(on_cpu):
    experience, _, _ = rollout_batch()
    plain = Actor(tiny_model(), temperature=TEMPERATURE)
    plain.packing_samples = False
    without_entropy = saved_for_backward(plain, experience, return_entropy=False)
    trainer = build_policy_actor(on_cpu, launch_args("--train.micro_batch_size", "4"), tiny_model())
    assert saved_for_backward(trainer.actor, experience, return_entropy=False) == without_entropy
    # upstream's own entropy (what --actor.entropy_coef 0 asked for) keeps at least one (tokens x V) tensor
    tokens_by_vocab = experience.sequences.numel() * VOCAB
    assert saved_for_backward(plain, experience, return_entropy=True) >= without_entropy + tokens_by_vocab


def test_entropy_coef_zero_is_treated_as_unset(capsys):
    assert launch_args("--actor.entropy_coef", "0").actor.entropy_coef is None
    assert "--actor.entropy_coef 0 is treated as unset" in capsys.readouterr().err
    assert launch_args("--actor.entropy_coef", "0.001").actor.entropy_coef == 0.001  # a bonus stays a bonus
    assert launch_args().actor.entropy_coef is None
