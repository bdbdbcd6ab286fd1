"""Supervised warm start: the batch matches the env's layout, and teacher forcing fits the references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.baselines import GreedyLMAgent
from agents.evaluation import evaluate
from agents.trainers.grpo import GRPO
from agents.trainers.supervised import reference_batch
from text_gym.envs.text_gen import TextGenEnv


def test_reference_batch_is_what_the_env_would_see():
    env = TextGenEnv(task="copy", tokenizer="tiny", max_new_tokens=5)
    batch = reference_batch(env, [0, 1], np.random.default_rng(0), torch.device("cpu"))
    for row in range(2):
        prompt = batch.prompt_ids[row][batch.prompt_mask[row] == 1].tolist()
        assert prompt == env.prompts.encode(env.task[row].prompt).tolist()
        reply = batch.response_ids[row][batch.response_mask[row] == 1].tolist()
        expected = env.tokenizer(env.task[row].references[0], add_special_tokens=False)["input_ids"]
        assert reply == (expected + [env.eos_token_id])[:5]  # cut at the env's budget, like an episode
    assert batch.prompt_mask[:, -1].all()  # left-padded prompts end together


def test_warm_start_fits_the_references_and_logs():
    kwargs = {"tokenizer": "tiny", "max_new_tokens": 3}
    trainer = GRPO("tiny", "TextGen-EchoLetter-v0", env_kwargs=kwargs, n_envs=4, group_size=2, seed=0, verbose=0)
    before = evaluate(GreedyLMAgent(trainer.policy), "TextGen-EchoLetter-v0", kwargs, verbose=False).metrics["bleu"]
    weights = [p.detach().clone() for p in trainer.policy.parameters()]
    rows = trainer.warm_start(3_000, learning_rate=3e-3, batch_size=13)
    assert rows[-1]["supervised/tokens"] >= 3_000 and rows[-1]["supervised/loss"] < 0.5 * rows[0]["supervised/loss"]
    assert any(not torch.equal(a, b) for a, b in zip(weights, trainer.policy.parameters(), strict=True))
    after = evaluate(GreedyLMAgent(trainer.policy), "TextGen-EchoLetter-v0", kwargs, verbose=False).metrics["bleu"]
    assert before < 0.1 and after == pytest.approx(1.0)  # "Say: q" -> "q", for every letter
    assert trainer.supervised_history == rows


def test_warm_start_needs_a_positive_budget():
    trainer = GRPO("tiny", "TextGen-EchoLetter-v0", env_kwargs={"tokenizer": "tiny"}, n_envs=4, group_size=2, verbose=0)
    with pytest.raises(ValueError, match="total_tokens or max_seconds"):
        trainer.warm_start()
    with pytest.raises(ValueError, match="learning_rate: expected a finite positive number, got inf"):
        trainer.warm_start(10, learning_rate=float("inf"))
    with pytest.raises(
        ValueError, match=r"total_tokens: expected a positive int \(reference tokens to train on\), got 0"
    ):
        trainer.warm_start(0)
    with pytest.raises(ValueError, match="batch_size: expected a positive int .*, got 2.5"):
        trainer.warm_start(10, batch_size=2.5)
    with pytest.raises(ValueError, match="lr_schedule"):
        trainer.warm_start(10, lr_schedule="cosine")


@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_the_step_size_follows_the_schedule_by_hand(schedule):
    trainer = GRPO("tiny", "TextGen-EchoLetter-v0", env_kwargs={"tokenizer": "tiny", "max_new_tokens": 3},
                   n_envs=4, group_size=2, seed=0, verbose=0)  # fmt: skip
    rows = trainer.warm_start(200, learning_rate=1e-3, batch_size=4, lr_schedule=schedule)
    done_before = [0.0] + [row["supervised/tokens"] for row in rows[:-1]]  # reference tokens before each step
    expected = [1e-3 * (1 - done / 200 if schedule == "linear" else 1) for done in done_before]
    assert [row["supervised/learning_rate"] for row in rows] == pytest.approx(expected)
    assert len(rows) > 3 and (schedule == "constant" or rows[-1]["supervised/learning_rate"] < 0.2e-3)
