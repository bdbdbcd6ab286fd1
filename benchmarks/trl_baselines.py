"""TRL's trainers on the same model, data, batch and lengths as ours: the baselines of ``trainer_throughput``.

- :func:`time_trl_grpo`: ``GRPOTrainer`` with ``per_device_train_batch_size = n_envs``,
  ``num_generations = group_size``, ``max_completion_length = max_new_tokens`` and the env's reward
  as a reward function; tokens are counted from the completions it scores. With ``beta > 0`` it
  also scores every completion under a frozen reference model, the KL penalty that SequencePPO's
  ``kl_coef`` pays: TRL 1.x has no ``PPOTrainer`` any more, so this is the nearest PPO-like
  trainer in TRL (SequencePPO also runs a value head, which this does not).
- :func:`time_trl_sft`: ``SFTTrainer`` on the warm start's own pairs, in its order (the env's
  prompt encoding, a reference cut to the reply budget, end-of-sequence when it fits), tokenized
  once, loss on the reply tokens only, ``per_device_train_batch_size`` as the warm start's batch,
  its padding and full logits as a user gets them by default; tokens are the reply tokens of the
  batches it trained on.

Each returns ``tokens``, ``seconds`` and ``cpu seconds`` from the end of its first (warm-up)
optimizer step to the end of its last, or None when ``trl`` is not installed
(``pip install 'text_gym[trl]'``).
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch

__all__ = ["time_trl_grpo", "time_trl_sft"]


def _have_trl() -> bool:
    if importlib.util.find_spec("trl") is None:
        print("trl is not installed: skipping TRL's trainers (pip install 'text_gym[trl]')")
        return False
    return True


def _clock() -> Any:
    """A TRL callback that marks (wall, CPU, tokens) at the end of every optimizer step; tokens via ``.tokens``."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.tokens = 0
            self.marks: list[tuple[float, float, int]] = []

        def on_step_end(self, *_: Any, **__: Any) -> None:
            self.marks.append((time.perf_counter(), time.process_time(), self.tokens))

        def result(self) -> dict[str, Any]:
            (t0, c0, n0), (t1, c1, n1) = self.marks[0], self.marks[-1]  # from the end of the warm-up step
            return {"tokens": n1 - n0, "seconds": t1 - t0, "cpu seconds": c1 - c0, "rollout share": None}

    return Clock()


def _common_config(steps: int, out: str) -> dict[str, Any]:
    return {
        "output_dir": out,
        "max_steps": steps,
        "use_cpu": not torch.cuda.is_available(),
        "bf16": torch.cuda.is_available(),
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 1,
        "disable_tqdm": True,
        "seed": 0,
    }


def time_trl_grpo(
    model: str, env_id: str, env_kwargs: dict[str, Any], n_envs: int, group_size: int, steps: int, beta: float = 0.0
) -> dict[str, Any] | None:
    """Time TRL's ``GRPOTrainer`` for ``steps`` measured optimizer steps after one warm-up step (see the module docstring)."""
    if not _have_trl():
        return None
    import datasets
    from trl import GRPOConfig, GRPOTrainer

    from agents.modeling.loading import load_model

    env = gym.make(env_id, **env_kwargs).unwrapped
    samples = [env.task[i] for i in range(min(len(env.task), 64))]
    references = {s.prompt: list(s.references) for s in samples}
    data = datasets.Dataset.from_list(
        [{"prompt": [{"role": "user", "content": s.prompt}], "text": s.prompt} for s in samples]
    )
    clock = _clock()

    def env_reward(prompts: list, completions: list, completion_ids: list, text: list, **_: Any) -> list[float]:
        clock.tokens += sum(len(ids) for ids in completion_ids)
        outputs = [c[0]["content"] if isinstance(c, list) else c for c in completions]
        return [float(x) for x in env.reward.score(text, outputs, [references[t] for t in text])["reward"]]

    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            per_device_train_batch_size=n_envs,
            num_generations=group_size,
            max_completion_length=env.max_new_tokens,
            learning_rate=1e-5,
            beta=beta,
            num_iterations=1,
            **_common_config(steps + 1, out),
        )
        lm = load_model(model)
        if beta > 0:  # TRL loads its reference model from the policy's folder: give it one
            lm.save_pretrained(f"{out}/model")
            lm.config._name_or_path = f"{out}/model"
        trainer = GRPOTrainer(
            model=lm,
            reward_funcs=env_reward,
            args=config,
            train_dataset=data,
            processing_class=env.tokenizer,
            callbacks=[clock],
        )
        trainer.train()
    return clock.result()


def sft_pairs(env: Any, n: int, seed: int = 0) -> list[dict[str, list[int]]]:
    """``n`` warm-start pairs of ``env`` as TRL token lists: ``input_ids`` and ``labels`` (-100 on the prompt).

    The first ``n`` pairs that ``TeacherForcing(..., seed=seed)`` trains on, in its order (its
    random generator draws the sample order, then each sample's reference, as here), when ``n``
    is at most the task's size.
    """
    from agents.trainers.supervised import reference_batch

    rng = np.random.default_rng(seed)
    indices = rng.permutation(len(env.task))[:n].tolist()
    batch = reference_batch(env, indices, rng, torch.device("cpu"))
    rows = []
    for b in range(len(indices)):
        prompt = batch.prompt_ids[b][batch.prompt_mask[b].bool()].tolist()
        reply = batch.response_ids[b][batch.response_mask[b].bool()].tolist()
        rows.append({"input_ids": prompt + reply, "labels": [-100] * len(prompt) + reply})
    return rows


def time_trl_sft(
    model: str, env_id: str, env_kwargs: dict[str, Any], batch_size: int, steps: int, learning_rate: float = 5e-5
) -> dict[str, Any] | None:
    """Time TRL's ``SFTTrainer`` on the warm start's pairs for ``steps`` measured steps after a warm-up step."""
    if not _have_trl():
        return None
    import datasets
    from trl import SFTConfig, SFTTrainer

    from agents.modeling.loading import load_model

    env = gym.make(env_id, **env_kwargs).unwrapped
    data = datasets.Dataset.from_list(sft_pairs(env, batch_size * (steps + 1)))
    clock = _clock()

    class Counting(SFTTrainer):  # counts the reply tokens each step trains on
        def compute_loss(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            clock.tokens += int((inputs["labels"] != -100).sum())
            return super().compute_loss(model, inputs, *args, **kwargs)

    with tempfile.TemporaryDirectory() as out:
        config = SFTConfig(
            per_device_train_batch_size=batch_size,
            learning_rate=learning_rate,
            max_length=None,
            train_sampling_strategy="sequential",  # the pairs in the warm start's order
            **_common_config(steps + 1, out),
        )
        lm = load_model(model)
        trainer = Counting(model=lm, args=config, train_dataset=data, processing_class=env.tokenizer, callbacks=[clock])
        trainer.train()
    return clock.result()
