"""The trainer throughput benchmark's bookkeeping: each row's TRL counterpart, and the SFT pairs TRL trains on."""

from __future__ import annotations

import numpy as np
import torch

from agents.trainers.supervised import reference_batch
from benchmarks.trainer_throughput import LABELS, add_ratios
from benchmarks.trl_baselines import sft_pairs
from text_gym.envs import TextGenEnv


def row(name: str, per_cpu_second: float) -> dict:
    return {"trainer": LABELS[name], "tokens/s": per_cpu_second / 2, "tokens per CPU-s": per_cpu_second}


def test_each_trainer_is_compared_with_the_trl_trainer_that_does_its_work():
    names = ["grpo", "trl-grpo", "ppo", "trl-grpo-kl", "sb3-ppo", "warm-start", "trl-sft"]
    rows = [row(n, v) for n, v in zip(names, [30.0, 10.0, 20.0, 8.0, 12.0, 9.0, 3.0], strict=True)]
    add_ratios(rows, names)
    got = {r["trainer"]: (r["x TRL (CPU)"], r["x SB3 PPO (CPU)"]) for r in rows}
    assert got[LABELS["grpo"]] == (3.0, 2.5)
    assert got[LABELS["ppo"]] == (2.5, 20 / 12)  # against GRPOTrainer with a KL reference
    assert got[LABELS["sb3-ppo"]] == (1.2, 1.0)
    assert got[LABELS["warm-start"]] == (3.0, "-")  # reply tokens trained: not SB3's kind of token
    assert got[LABELS["trl-sft"]] == ("-", "-")


def test_missing_baselines_leave_a_dash():
    rows = [row("grpo", 30.0)]
    add_ratios(rows, ["grpo", "trl-grpo"])
    assert rows[0]["x TRL (wall)"] == rows[0]["x SB3 PPO (CPU)"] == "-"


def test_sft_pairs_are_the_warm_start_pairs_with_the_loss_on_the_reply():
    env = TextGenEnv(task="copy", tokenizer="tiny", max_new_tokens=5)
    pairs = sft_pairs(env, 3, seed=1)
    rng = np.random.default_rng(1)
    indices = rng.permutation(len(env.task))[:3].tolist()
    batch = reference_batch(env, indices, rng, torch.device("cpu"))
    for b, pair in enumerate(pairs):
        prompt = batch.prompt_ids[b][batch.prompt_mask[b].bool()].tolist()
        reply = batch.response_ids[b][batch.response_mask[b].bool()].tolist()
        assert pair["input_ids"] == prompt + reply
        assert pair["labels"] == [-100] * len(prompt) + reply
    assert sum(sum(x != -100 for x in p["labels"]) for p in pairs) == int(batch.response_mask.sum())
