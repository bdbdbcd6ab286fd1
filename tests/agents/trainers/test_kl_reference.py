"""After a warm start the KL reference is the warm-started model (LoRA too), and it survives save and load."""

from __future__ import annotations

import copy

import pytest
import torch

from agents.trainers.grpo import GRPO
from agents.trainers.rollout import collect_rollout

ECHO = {"tokenizer": "tiny", "max_new_tokens": 4}


def warm_started(**kwargs) -> tuple[GRPO, torch.nn.Module]:
    """A GRPO with a KL penalty, warm-started; and a copy of its policy from before the warm start."""
    options = {"env_kwargs": ECHO, "n_envs": 4, "group_size": 2, "seed": 0, "verbose": 0, "beta": 0.1}
    trainer = GRPO("tiny", "TextGen-EchoLetter-v0", **{**options, **kwargs})
    untrained = copy.deepcopy(trainer.policy)
    trainer.warm_start(200, learning_rate=1e-2, batch_size=8)
    return trainer, untrained


def logprobs(trainer: GRPO, model: torch.nn.Module, batch) -> torch.Tensor:
    with torch.no_grad():
        return trainer._score(batch, model=model)[0][batch.response_mask.bool()]


@pytest.mark.parametrize("lora", [None, {"r": 4}], ids=["full", "lora"])
def test_the_reference_is_the_warm_started_model_after_save_and_load(tmp_path, lora):
    trainer, untrained = warm_started(policy_kwargs={"lora": lora} if lora else None)
    batch = collect_rollout(trainer.policy, trainer.env, trainer.layout, generator=torch.Generator().manual_seed(0))
    mask = batch.response_mask.bool()
    reference = trainer._reference_logprobs(batch)[mask]
    torch.testing.assert_close(reference, logprobs(trainer, trainer.policy, batch), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(reference, logprobs(trainer, untrained, batch), atol=1e-2)

    trainer.save(tmp_path / "warm.zip")
    loaded = GRPO.load(tmp_path / "warm.zip")
    torch.testing.assert_close(loaded._reference_logprobs(batch)[mask], reference, atol=1e-5, rtol=1e-5)


def test_rl_after_a_warm_start_starts_at_zero_kl():
    trainer, _ = warm_started()
    trainer.learn(8)
    # The first update's policy is the warm-started model: its k3 KL to the reference is 0, not
    # the warm start's distance from the untrained model.
    assert trainer.history[0]["train/kl_ref"] == pytest.approx(0.0, abs=1e-7)


def test_without_a_kl_penalty_no_copy_is_kept():
    trainer, _ = warm_started(beta=0.0)
    assert trainer._reference is None
