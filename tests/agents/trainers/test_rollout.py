"""Batched KV-cache rollouts through a vector env, and one-forward scoring of whole episodes."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

import text_gym  # noqa: F401  (registers the environments)
from agents.modeling.lm import LMActorCritic
from agents.trainers.envs import env_layout, make_trainer_envs
from agents.trainers.rollout import collect_rollout
from agents.trainers.scoring import score_tokens
from text_gym.envs import UnscoredReplyWarning, text_gen
from text_gym.envs.text_gen import TextGenEnv


@pytest.fixture(scope="module")
def model() -> LMActorCritic:
    return LMActorCritic("tiny", device="cpu", dtype=torch.float32)


def make_envs(n: int = 4, max_new_tokens: int = 6, **kwargs) -> gym.vector.VectorEnv:
    return gym.make_vec(
        "TextGen-Copy-v0",
        num_envs=n,
        vectorization_mode="sync",
        tokenizer="tiny",
        reward="chrf",
        max_new_tokens=max_new_tokens,
        **kwargs,
    )


def rollout(model, envs, seeds=None, seed=0, **kwargs):
    generator = torch.Generator().manual_seed(seed)
    return collect_rollout(model, envs, env_layout(envs), seeds=seeds, generator=generator, with_values=True, **kwargs)


def test_one_forward_gives_the_rollout_log_probs_and_values(model):
    envs = make_envs(6, max_new_tokens=8)
    batch = rollout(model, envs, seeds=list(range(6)))
    spec = env_layout(envs)
    logprobs, values, entropy = score_tokens(model, batch, vocab_limit=spec.vocab_limit, with_values=True)
    mask = batch.response_mask.bool()
    assert logprobs.shape == batch.logprobs.shape == values.shape == entropy.shape
    torch.testing.assert_close(logprobs[mask], batch.logprobs[mask], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(values[mask], batch.values[mask], atol=1e-4, rtol=1e-4)
    assert (batch.logprobs[~mask] == 0).all()


def test_one_forward_matches_stepping_token_by_token_without_cache(model):
    envs = make_envs(3, max_new_tokens=5)
    batch = rollout(model, envs, seeds=[3, 4, 5])
    for row in range(len(batch)):
        prompt = batch.prompt_ids[row][batch.prompt_mask[row].bool()]
        reply = batch.response_ids[row][batch.response_mask[row].bool()]
        for t, token in enumerate(reply):
            ids = torch.cat([prompt, reply[:t]])[None]  # (1, L): no padding, no cache
            with torch.no_grad():
                logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, -1].float()
            expected = logits.log_softmax(-1)[token]
            assert abs(float(expected) - float(batch.logprobs[row, t])) < 1e-4


def test_rollout_agrees_with_the_env(model):
    envs = make_envs(4, max_new_tokens=6)
    batch = rollout(model, envs, seeds=[0, 1, 2, 3])
    tokenizer = envs.envs[0].unwrapped.tokenizer
    assert len(batch) == 4 and batch.response_ids.shape[1] <= 6
    for row, info in enumerate(batch.infos):
        reply = batch.response_ids[row][batch.response_mask[row].bool()].tolist()
        assert info["text"] == tokenizer.decode(reply, skip_special_tokens=True).strip()
        # Sparse shaping: the whole score is paid on the last step.
        last = int(batch.lengths[row]) - 1
        assert batch.rewards[row, last].item() == pytest.approx(info["scores"]["reward"], abs=1e-6)
        assert batch.rewards[row, :last].abs().sum() == 0
        ended_with_eos = reply[-1] == envs.envs[0].unwrapped.eos_token_id
        assert ended_with_eos or len(reply) == 6


def test_equal_seeds_give_equal_prompts_and_rollouts_are_reproducible(model):
    envs = make_envs(4)
    first = rollout(model, envs, seeds=[7, 7, 9, 9], seed=1)
    assert first.indices[0] == first.indices[1] and first.indices[2] == first.indices[3]
    second = rollout(model, envs, seeds=[7, 7, 9, 9], seed=1)
    assert torch.equal(first.response_ids, second.response_ids)
    assert torch.equal(first.logprobs, second.logprobs)


def test_greedy_rollout_and_select(model):
    envs = make_envs(4)
    batch = rollout(model, envs, seeds=[0, 1, 2, 3], deterministic=True)
    again = rollout(model, envs, seeds=[0, 1, 2, 3], seed=5, deterministic=True)
    assert torch.equal(batch.response_ids, again.response_ids)
    part = batch.select([2, 0])
    assert len(part) == 2 and part.infos == [batch.infos[2], batch.infos[0]]
    assert part.response_ids.shape[1] == int(batch.lengths[[2, 0]].max())


def test_make_trainer_envs_accepts_ids_envs_and_vector_envs():
    env = TextGenEnv(task="copy", tokenizer="tiny", max_new_tokens=4)
    assert make_trainer_envs(env, 3).num_envs == 3
    made = gym.make("TextGen-Copy-v0", tokenizer="tiny")
    assert make_trainer_envs(made, 2).num_envs == 2
    assert make_trainer_envs("TextGen-Copy-v0", 2, env_kwargs={"tokenizer": "tiny"}).num_envs == 2
    vec = make_envs(2)
    assert make_trainer_envs(vec, 99) is vec
    with pytest.raises(ValueError, match="n_envs"):
        make_trainer_envs("TextGen-Copy-v0", 0)
    with pytest.raises(TypeError, match="expected an env id"):
        make_trainer_envs(42, 1)


def test_same_step_autoreset_vector_env(model):
    fns = [lambda: TextGenEnv(task="copy", tokenizer="tiny", reward="chrf", max_new_tokens=6)] * 3
    envs = gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    batch = rollout(model, envs, seeds=[0, 1, 2])
    assert all("scores" in info for info in batch.infos)
    assert np.isfinite(batch.returns.numpy()).all()


def test_the_next_rollout_abandons_filler_episodes_without_a_warning(model, monkeypatch):
    def short_and_long() -> gym.vector.VectorEnv:
        # The 4-token episode ends first; the vector env auto-resets it and the rollout feeds it filler.
        # Equal observation sizes (prompt room + reply budget), as a vector env needs.
        sizes = [(8, 96), (4, 100)]
        return gym.vector.SyncVectorEnv(
            [
                lambda n=n, p=p: TextGenEnv(task="copy", tokenizer="tiny", max_new_tokens=n, max_prompt_tokens=p)
                for n, p in sizes
            ]
        )

    # Make every unseeded reset that cuts an unscored reply warn (the env normally waits for three
    # cuts at one length, a time limit's signature), so that the rollout's own quiet is what is tested.
    monkeypatch.setattr(text_gen, "REPEATED_CUTS", 1)
    by_hand = short_and_long()
    rollout(model, by_hand)
    with pytest.warns(UnscoredReplyWarning):
        by_hand.reset()  # a user's reset cuts that filler episode short: the env warns
    envs = short_and_long()
    rollout(model, envs)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnscoredReplyWarning)
        batch = rollout(model, envs)  # the rollout's own reset does it on purpose, quietly
    assert batch.lengths.tolist()[1] <= 4


def test_shared_prompt_groups_give_the_same_log_probs_values_and_gradients(model):
    envs = make_envs(8, max_new_tokens=6)
    spec = env_layout(envs)
    seeds = [1] * 4 + [2] * 4  # two prompts, four replies each
    shared = rollout(model, envs, seeds=seeds, group_size=4)
    plain = rollout(model, envs, seeds=seeds, group_size=1)
    assert torch.equal(shared.response_ids, plain.response_ids)
    torch.testing.assert_close(shared.logprobs, plain.logprobs, atol=1e-5, rtol=1e-5)
    mask = shared.response_mask.bool()
    grads = []
    for group_size in (4, 1):
        model.zero_grad()
        logprobs, values, _ = score_tokens(
            model, shared, vocab_limit=spec.vocab_limit, with_values=True, group_size=group_size
        )
        torch.testing.assert_close(logprobs[mask], shared.logprobs[mask], atol=1e-4, rtol=1e-4)
        (logprobs[mask].sum() + values[mask].sum()).backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    model.zero_grad()
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
