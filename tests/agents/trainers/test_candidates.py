"""Beam-search candidates (``candidates="beam"``): the n-best lists, a rollout that plays a plan, and GRPO on them."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch

from agents.modeling.lm import LMActorCritic
from agents.modeling.prefix import left_align
from agents.trainers.candidates import NO_TOKEN, beam_candidates
from agents.trainers.envs import env_layout
from agents.trainers.grpo import GRPO, GRPOConfig
from agents.trainers.rollout import collect_rollout
from tests.agents.trainers.test_rollout import make_envs
from text_gym.envs.text_gen import TextGenEnv


@pytest.fixture(scope="module")
def model() -> LMActorCritic:
    return LMActorCritic("tiny", device="cpu", dtype=torch.float32)


def rollout(model, envs, seeds, generator=None, **kwargs):
    generator = generator or torch.Generator().manual_seed(0)
    return collect_rollout(model, envs, env_layout(envs), seeds=seeds, generator=generator, **kwargs)


def test_replies_stop_after_the_first_end_of_sequence_by_hand():
    eos = 2
    out = torch.tensor([[7, 7, 5, eos, 6], [7, 7, 5, 6, eos], [7, 7, eos, eos, eos], [7, 7, 4, 4, 4]])  # prompt 7 7
    lm = SimpleNamespace(generate=lambda **kwargs: out)
    prompts, mask = torch.tensor([[7, 7], [7, 7]]), torch.ones(2, 2, dtype=torch.long)
    plan = beam_candidates(SimpleNamespace(lm=lm), prompts.repeat(2, 1), mask.repeat(2, 1), 2, 4, eos)
    assert plan.tolist() == [
        [5, eos, NO_TOKEN, NO_TOKEN],
        [5, 6, eos, NO_TOKEN],
        [eos, NO_TOKEN, NO_TOKEN, NO_TOKEN],
        [4, 4, 4, NO_TOKEN],  # generate stopped at 3 new tokens without an end: the budget's rest is empty
    ]
    with pytest.raises(ValueError, match="multiple of group_size=2 prompt rows, got 3"):
        beam_candidates(SimpleNamespace(lm=lm), prompts.repeat(2, 1)[:3], mask.repeat(2, 1)[:3], 2, 4, eos)


def test_candidates_are_the_n_best_of_generate(model):
    envs = make_envs(4, max_new_tokens=5)
    spec = env_layout(envs)
    seen = {}

    def plan(prompt_ids, prompt_mask):
        seen["prompts"] = (prompt_ids, prompt_mask)
        return beam_candidates(model, prompt_ids, prompt_mask, 2, spec.max_new_tokens, spec.eos_token_id)

    batch = rollout(model, envs, seeds=[3, 3, 4, 4], plan=plan, group_size=2)
    ids, mask = left_align(seen["prompts"][0][::2], seen["prompts"][1][::2])
    with torch.no_grad():
        out = model.lm.generate(
            input_ids=ids,
            attention_mask=mask,
            num_beams=2,
            num_return_sequences=2,
            do_sample=False,
            max_new_tokens=5,
            early_stopping=True,
            eos_token_id=spec.eos_token_id,
            pad_token_id=spec.eos_token_id,
        )[:, ids.shape[1] :]
    for row in range(4):
        reply = batch.response_ids[row][batch.response_mask[row].bool()]
        assert reply.tolist() == out[row, : len(reply)].tolist()
    assert batch.response_ids[0].tolist() != batch.response_ids[1].tolist()  # two different hypotheses per prompt


def test_the_rollout_plays_the_plan_and_records_its_log_probs(model):
    envs = make_envs(3, max_new_tokens=4)
    spec = env_layout(envs)
    eos = spec.eos_token_id
    planned = torch.tensor([[5, 6, 7, 8], [9, eos, NO_TOKEN, NO_TOKEN], [eos, NO_TOKEN, NO_TOKEN, NO_TOKEN]])
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    batch = rollout(model, envs, [0, 1, 2], generator, plan=lambda ids, mask: planned, with_values=True)

    assert batch.response_mask.sum(1).tolist() == [4, 2, 1]  # each episode ends at end-of-sequence or the budget
    for row, length in enumerate([4, 2, 1]):
        assert batch.response_ids[row, :length].tolist() == planned[row, :length].tolist()
    assert torch.equal(generator.get_state(), state)  # nothing was sampled
    for row, length in enumerate([4, 2, 1]):  # each token's log-prob, from the prompt and reply so far, uncached
        prompt = batch.prompt_ids[row][batch.prompt_mask[row].bool()]
        for t in range(length):
            ids = torch.cat([prompt, planned[row, :t]])[None]  # (1, L)
            with torch.no_grad():
                out = model(input_ids=ids, attention_mask=torch.ones_like(ids))
            expected = out.logits[0, -1].float().log_softmax(-1)[planned[row, t]]
            assert abs(float(expected) - float(batch.logprobs[row, t])) < 1e-4
            assert abs(float(out.values[0, -1]) - float(batch.values[row, t])) < 1e-4
    assert (batch.logprobs[~batch.response_mask.bool()] == 0).all()


@pytest.mark.parametrize(
    ("planned", "error", "match"),
    [
        (
            torch.tensor([[5, 6, NO_TOKEN], [5, 6, 7]]),
            RuntimeError,
            r"expected a planned token for every running episode at step 2, got none for rows \[0\]",
        ),
        (torch.tensor([[5, 6, 7]]), ValueError, r"plan: expected replies of shape \(2, 3\), got \(1, 3\)"),
        (torch.tensor([[5, 6, 7], [5, 6, 10**6]]), ValueError, r"plan: expected token ids in \[0, "),
    ],
    ids=["ends-early", "shape", "out-of-vocabulary"],
)
def test_a_bad_plan_is_refused(model, planned, error, match):
    with pytest.raises(error, match=match):
        rollout(model, make_envs(2, max_new_tokens=3), [0, 1], plan=lambda ids, mask: planned)


def character_codes(prompts: list[str], outputs: list[str], references: list[list[str]]) -> list[float]:
    """A reward on which a tiny random model's candidates differ: the reply's character codes, mod 5."""
    return [float(sum(map(ord, output)) % 5) for output in outputs]


def test_grpo_trains_on_the_policys_beam_candidates(kept_rollouts):
    env = TextGenEnv(task="copy", tokenizer="tiny", reward=character_codes, max_new_tokens=4)
    trainer = GRPO("tiny", env, n_envs=8, group_size=4, baseline="risk", candidates="beam", seed=0, verbose=0)
    before = copy.deepcopy(trainer.policy)
    trainer.learn(32, callback=kept_rollouts)  # one iteration
    (batch,) = kept_rollouts.batches
    expected = beam_candidates(before, batch.prompt_ids, batch.prompt_mask, 4, 4, trainer.layout.eos_token_id)
    for row in range(len(batch)):
        reply = batch.response_ids[row][batch.response_mask[row].bool()]
        assert reply.tolist() == expected[row, : len(reply)].tolist()
    assert batch.extra["advantages"].abs().sum() > 0  # the candidates' rewards differ, so the update moves
    changed = [not torch.equal(a, b) for a, b in zip(before.parameters(), trainer.policy.parameters(), strict=True)]
    assert any(changed)


def test_candidates_are_checked():
    with pytest.raises(ValueError, match="candidates"):
        GRPOConfig(candidates="nbest")
