"""TextGenEnv transitions through the collectors and replay buffers of other RL libraries.

Each test drives the env with the library's own machinery (tianshou's Collector and
VectorReplayBuffer, torchrl's GymWrapper, info readers and ReplayBuffer, skrl's env wrapper and
memory) and checks that what the buffer holds is exactly what the env returned: a buffer lays out
its storage from the first ``info`` it sees, which the env's one info schema makes possible.
Each test is skipped when its library is not installed.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import text_gym  # noqa: F401  (registers the env ids)
from text_gym.envs import INFO_KEYS, references_from_info

pytestmark = pytest.mark.integration

ENV_KWARGS = {"tokenizer": "tiny", "max_new_tokens": 6, "max_prompt_tokens": 64, "reward": "chrf"}
# Lowercase letters and the space of the tiny byte-level tokenizer: random replies then share
# characters with the references, so chrF pays something and final rewards are not all 0.
REPLY_TOKENS = np.array([34, *range(99, 125)])
EOS_PROBABILITY = 0.1


class Recorder(gym.Wrapper):
    """Keep every ``reset`` info and ``step`` result, to compare with what a buffer stored."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.resets: list[dict[str, Any]] = []
        self.steps: list[tuple[Any, ...]] = []

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.resets.append(info)
        return obs, info

    def step(self, action: Any) -> tuple[Any, ...]:
        result = self.env.step(action)
        self.steps.append(result)
        return result


def make_env() -> Recorder:
    return Recorder(gym.make("TextGen-Copy-v0", **ENV_KWARGS))


def random_replies(rng: np.random.Generator, n: int, eos_token_id: int) -> np.ndarray:
    actions = rng.choice(REPLY_TOKENS, n)
    actions[rng.random(n) < EOS_PROBABILITY] = eos_token_id
    return actions


def check_scores_match_rewards(rewards, dones, scored, final_scores) -> None:
    """Rewards are sparse: the score on the last step of an episode, and 0 with ``scored`` False before it."""
    rewards, dones, scored = np.asarray(rewards).ravel(), np.asarray(dones).ravel(), np.asarray(scored).ravel()
    np.testing.assert_array_equal(scored, dones)
    np.testing.assert_allclose(rewards[dones], np.asarray(final_scores).ravel()[dones], atol=1e-6)
    assert (rewards[~dones] == 0).all() and dones.sum() >= 2 and (rewards[dones] > 0).any()


# ----------------------------------------------------------------- tianshou
def collect_with_tianshou(seed: int, num_envs: int = 2, n_episode: int = 6):
    pytest.importorskip("tianshou")
    from tianshou.algorithm.algorithm_base import Policy
    from tianshou.data import Batch, Collector, VectorReplayBuffer
    from tianshou.env import DummyVectorEnv

    class RandomReplies(Policy):
        def __init__(self, action_space: gym.Space, eos_token_id: int) -> None:
            super().__init__(action_space=action_space)
            self.rng, self.eos_token_id = np.random.default_rng(seed), eos_token_id

        def forward(self, batch: Batch, state: Any = None, **kwargs: Any) -> Batch:
            return Batch(act=random_replies(self.rng, len(batch.obs.input_ids), self.eos_token_id))

    envs = [make_env() for _ in range(num_envs)]
    vector = DummyVectorEnv([lambda env=env: env for env in envs])
    vector.seed(seed)
    buffer = VectorReplayBuffer(total_size=32 * num_envs, buffer_num=num_envs)
    collector = Collector(RandomReplies(envs[0].action_space, envs[0].unwrapped.eos_token_id), vector, buffer)
    collector.reset()
    collector.collect(n_episode=n_episode)
    return envs, buffer


@pytest.mark.parametrize("seed", [0, 1])
def test_tianshou_collector_stores_every_info_in_its_replay_buffer(seed):
    envs, buffer = collect_with_tianshou(seed)
    assert len(buffer) > 0
    for env, part in zip(envs, buffer.buffers):
        rows = part[np.arange(len(part))]  # this sub-env's transitions, in order
        assert len(rows) == len(env.steps)
        for k, (_, reward, terminated, truncated, info) in enumerate(env.steps):
            stored = rows.info[k]
            assert rows.rew[k] == reward and rows.terminated[k] == terminated and rows.truncated[k] == truncated
            for key in INFO_KEYS:
                if key != "scores":
                    assert stored[key] == info[key], (k, key)
            assert {name: stored.scores[name] for name in info["scores"]} == info["scores"]
            assert references_from_info(stored) == list(env.unwrapped.task[int(stored.index)].references)
        check_scores_match_rewards(rows.rew, rows.done, rows.info.scored, rows.info.scores.reward)
    # Seeded: the same seed collects the same episodes.
    _, again = collect_with_tianshou(seed)
    for key in ("rew", "done"):
        np.testing.assert_array_equal(getattr(again, key), getattr(buffer, key))
    np.testing.assert_array_equal(again.info.index, buffer.info.index)


# ----------------------------------------------------------------- torchrl
@pytest.mark.parametrize("seed", [0, 1])
def test_torchrl_info_readers_and_replay_buffer_store_what_the_env_returned(seed):
    pytest.importorskip("torchrl")
    import torch
    from tensordict import TensorDict
    from torchrl.data import Composite, LazyTensorStorage, ReplayBuffer, Unbounded
    from torchrl.envs import GymWrapper
    from torchrl.envs.gym_like import BaseInfoDictReader, default_info_dict_reader

    class ScoresReader(BaseInfoDictReader):
        """Read the nested ``info["scores"]``, whose keys the env fixes at construction."""

        def __init__(self, names: tuple[str, ...]) -> None:
            self.names = names
            self._spec = Composite({"scores": Composite({n: Unbounded((), dtype=torch.float64) for n in names})})

        def __call__(self, info: dict[str, Any], tensordict: TensorDict) -> TensorDict:
            return tensordict.set("scores", TensorDict({n: torch.tensor(info["scores"][n]) for n in self.names}, []))

        @property
        def info_spec(self) -> Composite:
            return self._spec

    recorder = make_env()
    base = recorder.unwrapped
    env = GymWrapper(recorder, categorical_action_encoding=True)
    scalars = {"index": torch.int64, "num_tokens": torch.int64, "scored": torch.bool}
    env.set_info_dict_reader(
        default_info_dict_reader(list(scalars), spec={k: Unbounded((), dtype=t) for k, t in scalars.items()})
    )
    env.set_info_dict_reader(ScoresReader((*base.reward.components, "reward")))
    env.set_seed(seed)
    recorder.resets.clear()  # set_seed reset the env; keep what the rollout does
    recorder.steps.clear()
    rng = np.random.default_rng(seed)

    def policy(tensordict: TensorDict) -> TensorDict:
        return tensordict.set("action", torch.tensor(random_replies(rng, 1, base.eos_token_id)[0]))

    rollout = env.rollout(max_steps=24, policy=policy, break_when_any_done=False)  # auto-resets
    buffer = ReplayBuffer(storage=LazyTensorStorage(64))
    buffer.extend(rollout)
    stored = buffer[:]  # the transitions, in order

    assert len(stored) == len(recorder.steps) == 24
    steps = [info for *_, info in recorder.steps]
    assert stored["next", "index"].tolist() == [int(i["index"]) for i in steps]
    assert stored["next", "num_tokens"].tolist() == [int(i["num_tokens"]) for i in steps]
    assert stored["next", "scored"].tolist() == [bool(i["scored"]) for i in steps]
    for name in steps[0]["scores"]:
        assert stored["next", "scores", name].tolist() == [float(i["scores"][name]) for i in steps]
    assert stored["next", "reward"].squeeze(-1).tolist() == pytest.approx([r for _, r, *_ in recorder.steps])
    # The info before each step: the reset's at an episode start, else the previous step's.
    starts = stored["num_tokens"] == 0
    assert stored["index"][starts].tolist() == [int(i["index"]) for i in recorder.resets[: int(starts.sum())]]
    check_scores_match_rewards(
        stored["next", "reward"].numpy(),
        stored["next", "done"].numpy(),
        stored["next", "scored"].numpy(),
        stored["next", "scores", "reward"].numpy(),
    )


# ----------------------------------------------------------------- skrl
def test_skrl_wrapper_and_memory_store_vector_env_infos():
    pytest.importorskip("skrl")
    import torch
    from skrl import config
    from skrl.envs.wrappers.torch import wrap_env
    from skrl.memories.torch import RandomMemory

    num_envs, steps, seed = 2, 20, 0
    vector = gym.make_vec("TextGen-Copy-v0", num_envs=num_envs, vectorization_mode="sync", **ENV_KWARGS)
    key = config.torch.key
    config.torch.key = seed  # skrl seeds the first reset of a vector env with its PRNG key
    try:
        env = wrap_env(vector, wrapper="gymnasium")
    finally:
        config.torch.key = key
    memory = RandomMemory(memory_size=steps, num_envs=num_envs, device="cpu")
    fields = {"rewards": torch.float32, "dones": torch.bool, "index": torch.int64, "num_tokens": torch.int64}
    fields |= {"scored": torch.bool, "score": torch.float64}
    for name, dtype in fields.items():
        memory.create_tensor(name=name, size=1, dtype=dtype)

    rng = np.random.default_rng(seed)
    eos = vector.get_attr("eos_token_id")[0]
    _, infos = env.reset()
    first_index = infos["index"].copy()
    for _ in range(steps):
        actions = torch.as_tensor(random_replies(rng, num_envs, eos)).view(num_envs, 1)
        _, rewards, terminated, truncated, infos = env.step(actions)

        def column(values: Any, dtype: torch.dtype) -> torch.Tensor:
            return torch.as_tensor(np.asarray(values)).to(dtype).view(num_envs, 1)

        memory.add_samples(
            rewards=rewards,
            dones=terminated | truncated,
            index=column(infos["index"], torch.int64),
            num_tokens=column(infos["num_tokens"], torch.int64),
            scored=column(infos["scored"], torch.bool),
            score=column(infos["scores"]["reward"], torch.float64),
        )
    env.close()

    get = {name: memory.get_tensor_by_name(name).squeeze(-1).numpy() for name in fields}  # (steps, num_envs)
    task = vector.get_attr("task")[0]
    for row in range(num_envs):
        assert references_from_info(infos, row=row) == list(task[int(infos["index"][row])].references)
        # Gymnasium autoresets on the step after an end, which returns the reset info.
        expected, count = [], 0
        for t in range(steps):
            restart = t > 0 and get["dones"][t - 1, row]
            count = 0 if restart else count + 1
            expected.append(count)
            if t > 0 and not restart:
                assert get["index"][t, row] == get["index"][t - 1, row], (t, row)
        assert get["num_tokens"][:, row].tolist() == expected
    assert (get["index"][0] == first_index).all()
    check_scores_match_rewards(get["rewards"], get["dones"], get["scored"], get["score"])
