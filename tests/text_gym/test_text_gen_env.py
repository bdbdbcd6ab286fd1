"""TextGenEnv: spaces, dynamics, rewards, episode ends, info, seeding, bad input, registration."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ResetNeeded

import text_gym
from text_gym.envs import INFO_KEYS, TextGenEnv, UnscoredReplyWarning, references_from_info
from text_gym.errors import PromptTooLongError, RewardError, UnknownNameError
from text_gym.tasks import Sample, from_records
from text_gym.testing import check_text_env

SMALL = {"tokenizer": "tiny", "max_new_tokens": 40, "max_prompt_tokens": 64}


def make(task="copy", **kwargs) -> TextGenEnv:
    return TextGenEnv(task=task, **{**SMALL, **kwargs})


def encode_reply(env: TextGenEnv, text: str) -> list[int]:
    return env.tokenizer(text, add_special_tokens=False)["input_ids"] + [env.eos_token_id]


def play(env: TextGenEnv, actions: list[int]):
    rewards, result = [], None
    for action in actions:
        result = env.step(action)
        rewards.append(result[1])
        if result[2] or result[3]:
            break
    return rewards, result


@pytest.mark.parametrize("env_id", sorted(text_gym.ENV_TASKS))
def test_every_registered_env_passes_both_checkers(env_id):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(env_id, **{**SMALL, "max_prompt_tokens": 192})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", UnscoredReplyWarning)  # the checkers reset mid-episode on purpose
        check_text_env(env)
        sb3_check_env(env.unwrapped)


def test_text_gym_prefix_makes_env_without_prior_import():
    env = gym.make("text_gym:TextGen-Copy-v0", **SMALL)
    assert isinstance(env.unwrapped, TextGenEnv)


def test_observation_layout_prompt_left_padded_reply_right_padded():
    env = make()
    obs, info = env.reset(seed=0, options={"index": 3})
    prompt_ids = env.prompts.encode(env.task[3].prompt)
    p = env.max_prompt_tokens
    assert info["index"] == 3
    np.testing.assert_array_equal(obs["input_ids"][p - len(prompt_ids) : p], prompt_ids)
    assert obs["attention_mask"][:p].sum() == len(prompt_ids) and obs["attention_mask"][p:].sum() == 0
    assert (obs["input_ids"][: p - len(prompt_ids)] == env.pad_token_id).all()
    obs, *_ = env.step(65)
    assert obs["input_ids"][p] == 65 and obs["attention_mask"][p] == 1 and obs["attention_mask"][p + 1 :].sum() == 0


def test_observations_are_fresh_copies():
    env = make()
    first, _ = env.reset(seed=0)
    snapshot = {k: v.copy() for k, v in first.items()}
    env.step(70)
    for key in first:
        np.testing.assert_array_equal(first[key], snapshot[key])


def test_reference_reply_terminates_with_bleu_one():
    env = make()
    env.reset(seed=0, options={"index": 0})
    reference = env.task[0].references[0]
    rewards, (_, reward, terminated, truncated, info) = play(env, encode_reply(env, reference))
    assert terminated and not truncated
    assert info["text"] == reference and references_from_info(info) == [reference]
    assert info["scores"]["bleu"] == pytest.approx(1.0) and reward == pytest.approx(1.0)
    assert rewards[:-1] == [0.0] * (len(rewards) - 1)


def test_truncated_at_budget_without_eos():
    env = make(max_new_tokens=3)
    env.reset(seed=0)
    _, (_, _, terminated, truncated, info) = play(env, [70, 71, 72])
    assert truncated and not terminated and info["num_tokens"] == 3 and info["scored"]


def test_delta_shaping_sums_to_final_score():
    env = make(reward_shaping="delta")
    env.reset(seed=0, options={"index": 1})
    reference = env.task[1].references[0]
    rewards, (*_, info) = play(env, encode_reply(env, reference))
    assert sum(rewards) == pytest.approx(info["scores"]["reward"]) == pytest.approx(1.0)
    assert any(r != 0 for r in rewards[:-1])


@pytest.mark.parametrize("shaping", ["sparse", "delta"])
def test_info_has_the_same_keys_and_types_on_reset_and_every_step(shaping):
    env = make(reward={"bleu": 1.0, "chrf": 0.5}, reward_shaping=shaping)
    _, first = env.reset(seed=0, options={"index": 0})
    reference = env.task[0].references[0]
    infos = [first] + [env.step(action)[-1] for action in encode_reply(env, reference)]

    def schema(info):
        return [(key, type(info[key]), np.shape(info[key])) for key in INFO_KEYS] + sorted(
            (name, type(value)) for name, value in info["scores"].items()
        )

    assert list(first) == list(INFO_KEYS) and all(schema(info) == schema(first) for info in infos)
    assert [kind for _, kind, _ in schema(first)[:5]] == [np.int64, str, str, str, np.int64]
    assert first["scored"].shape == () and first["scored"].dtype == np.bool_
    assert set(first["scores"]) == {"bleu", "chrf", "reward"}  # known before any reply is scored
    assert [info["num_tokens"] for info in infos] == list(range(len(infos)))
    assert [info["index"] for info in infos] == [0] * len(infos) and first["text"] == ""
    assert infos[-1]["text"] == reference  # the scored reply, decoded (end-of-sequence is special)
    # Mid-reply, text is the scored prefix under delta (decoded, stripped) and empty when nothing was scored.
    assert all(reference.startswith(info["text"]) if info["scored"] else info["text"] == "" for info in infos[1:-1])
    scored = [bool(info["scored"]) for info in infos]
    assert scored == [False] + [shaping == "delta"] * (len(infos) - 2) + [True]
    if shaping == "sparse":
        assert all(value == 0.0 for info in infos[:-1] for value in info["scores"].values())
    assert infos[-1]["scores"]["reward"] == pytest.approx(1.5)


def test_references_from_info_round_trips_any_text_and_vector_rows():
    references = ['il a dit "oui"', "ça, là", "[x]", "tab\tnew\nline"]
    task = from_records([{"prompt": "Say", "references": references}, {"prompt": "Hi", "reference": "hi"}], split="all")
    _, info = make(task=task).reset(seed=0, options={"index": 0})
    assert references_from_info(info) == references and "ça" in info["references"]  # exact, unescaped UTF-8
    envs = gym.vector.SyncVectorEnv([lambda: make(task=task)] * 2)
    _, infos = envs.reset(seed=0, options={"index": 1})
    assert [references_from_info(infos, row=i) for i in range(2)] == [["hi"], ["hi"]]
    with pytest.raises(TypeError, match="row"):
        references_from_info(infos)


def test_composite_reward_reports_each_component():
    env = make(reward={"bleu": 1.0, "chrf": 0.5})
    env.reset(seed=0, options={"index": 0})
    _, (*_, info) = play(env, encode_reply(env, env.task[0].references[0]))
    assert set(info["scores"]) == {"bleu", "chrf", "reward"}
    assert info["scores"]["reward"] == pytest.approx(1.5)


def test_seeded_resets_are_reproducible_and_seeds_differ():
    env = make()
    picks = [env.reset(seed=7)[1]["index"] for _ in range(2)]
    assert picks[0] == picks[1]
    assert len({env.reset(seed=s)[1]["index"] for s in range(20)}) > 1


def test_action_masks_hide_ids_that_are_not_tokens():
    env = make()
    masks = env.action_masks()
    assert masks.shape == (env.action_space.n,) and masks.dtype == np.bool_
    assert masks.sum() == min(len(env.tokenizer), env.action_space.n)
    with pytest.raises(ValueError):
        masks[0] = False  # read-only: callers cannot corrupt it


def test_render_ansi_shows_prompt_output_and_scores():
    env = make(render_mode="ansi")
    env.reset(seed=0, options={"index": 0})
    play(env, encode_reply(env, env.task[0].references[0]))
    text = env.render()
    assert env.task[0].prompt in text and "bleu=1.000" in text


def test_user_task_object_and_pickle():
    task = from_records(
        [{"prompt": "Say hi", "reference": "hi"}, {"prompt": "Say yo", "references": ["yo", "yo!"]}], split="all"
    )
    env = make(task=task)
    env.reset(seed=0, options={"index": 1})
    _, (*_, info) = play(env, encode_reply(env, "yo"))
    assert references_from_info(info) == ["yo", "yo!"] and info["scores"]["bleu"] == pytest.approx(1.0)
    clone = pickle.loads(pickle.dumps(env))
    assert clone.reset(seed=3)[1]["index"] == env.reset(seed=3)[1]["index"]


def test_real_qa_task_with_tiny_tokenizer():
    env = TextGenEnv(task="qa", tokenizer="tiny", max_new_tokens=4, max_prompt_tokens=500, split="validation")
    obs, info = env.reset(seed=0)
    assert info["prompt"] and env.observation_space.contains(obs)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec(mode):
    envs = gym.make_vec("TextGen-Copy-v0", num_envs=2, vectorization_mode=mode, **{**SMALL, "max_new_tokens": 4})
    try:
        obs, first = envs.reset(seed=0)
        assert obs["input_ids"].shape == (2, 68)
        ends = 0
        for _ in range(6):  # crosses an episode end (budget 4), autoreset included
            obs, rewards, terminated, truncated, infos = envs.step(envs.action_space.sample())
            ends += int(np.sum(terminated | truncated))
            # Every sub-env reports every key, each stacked into a typed array (no ragged, masked infos).
            assert infos.keys() == first.keys() and all(infos["_" + key].all() for key in INFO_KEYS)
            assert infos["scored"].dtype == np.bool_ and infos["num_tokens"].dtype == np.int64
            np.testing.assert_array_equal(infos["scored"], terminated | truncated)
            np.testing.assert_array_equal(infos["scores"]["reward"][infos["scored"]], rewards[infos["scored"]])
        assert obs["input_ids"].shape == (2, 68) and rewards.shape == (2,) and ends >= 2
    finally:
        envs.close()


def test_sb3_vec_env_and_ppo_learn():
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    class EpisodeEnds(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.infos: list[dict] = []

        def _on_step(self) -> bool:
            self.infos += [info for info, done in zip(self.locals["infos"], self.locals["dones"]) if done]
            return True

    vec = make_vec_env(
        "TextGen-Copy-v0", n_envs=2, seed=0, env_kwargs={**SMALL, "max_new_tokens": 8, "render_mode": None}
    )
    model = PPO("MultiInputPolicy", vec, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    before = [p.detach().clone() for p in model.policy.parameters()]
    ends = EpisodeEnds()
    model.learn(256, callback=ends)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters())), "PPO did not update"
    # The rollout buffer holds the env's observations: token ids of the vocabulary, a 0/1 mask.
    stored = model.rollout_buffer.observations
    assert (stored["input_ids"] == stored["input_ids"].round()).all() and stored["input_ids"].max() < vec.action_space.n
    assert set(np.unique(stored["attention_mask"])) == {0.0, 1.0}
    # Episodes ended, and SB3's Monitor saw the reward the env's info scored (sparse: the return).
    assert len(ends.infos) >= 256 // 8  # every episode ends within its 8-token budget
    for info in ends.infos:
        assert info["scored"] and info["num_tokens"] == info["episode"]["l"] <= 8
        assert info["scores"]["reward"] == pytest.approx(info["episode"]["r"], abs=1e-6)


# ----------------------------------------------------------------- bad input
def test_step_before_reset_and_after_end():
    env = make(max_new_tokens=1)
    with pytest.raises(ResetNeeded, match="before reset"):
        env.step(70)
    env.reset(seed=0)
    env.step(70)
    with pytest.raises(ResetNeeded, match="ended"):
        env.step(70)


@pytest.mark.parametrize(
    "action, error", [(-1, ValueError), (10**6, ValueError), (1.5, TypeError), ("a", TypeError), (True, TypeError)]
)
def test_bad_actions_are_rejected_and_leave_state_unchanged(action, error):
    env = make()
    obs, _ = env.reset(seed=0)
    with pytest.raises(error, match="token id"):
        env.step(action)
    after, *_ = env.step(70)  # the env still works, and the bad action left no trace
    assert after["attention_mask"].sum() == obs["attention_mask"].sum() + 1


def test_numpy_scalar_actions_act_like_python_ints():
    runs = []
    for actions in ([70, 71, 0], [np.int64(70), np.array(71), np.int32(0)], [np.uint16(70), np.array(71, np.int16), 0]):
        env = make()
        env.reset(seed=0)
        runs.append([env.step(action) for action in actions])
    for run in runs[1:]:
        for (obs, *rest, info), (obs0, *rest0, info0) in zip(run, runs[0]):
            np.testing.assert_array_equal(obs["input_ids"], obs0["input_ids"])
            assert rest == rest0 and info["text"] == info0["text"] and info["num_tokens"] == info0["num_tokens"]
    assert all(run[-1][2] for run in runs)  # 0, the end-of-sequence id, terminated each episode


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"task": "no-such-task"}, "copy"),
        ({"reward": "no-such-reward"}, "bleu"),
        ({"tokenizer": "no-such-tokenizer"}, "tiny"),
    ],
)
def test_unknown_names_list_the_known_ones(kwargs, match):
    with pytest.raises(UnknownNameError, match=match):
        TextGenEnv(**{**SMALL, **kwargs})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_new_tokens": 0},
        {"max_new_tokens": 2.5},
        {"max_prompt_tokens": -1},
        {"reward_shaping": "dense"},
        {"split": "dev"},
        {"prompt_truncation": "right"},
    ],
)
def test_bad_arguments_say_what_was_expected(kwargs):
    with pytest.raises(ValueError, match="got"):
        make(**kwargs)


def test_unsupported_render_mode_warns_like_gymnasium():
    # SB3's make_vec_env asks for render_mode="rgb_array" by default; text has no image, so the env
    # warns and renders nothing rather than refusing to be built.
    with pytest.warns(UserWarning, match="rgb_array"):
        env = make(render_mode="rgb_array")
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render"):
        assert env.render() is None


def test_bad_reset_options():
    env = make()
    with pytest.raises(ValueError, match=r"\[0, 2000\)"):
        env.reset(options={"index": 2000})
    with pytest.raises(TypeError, match="int"):
        env.reset(options={"index": "3"})
    with pytest.raises(ValueError, match="unknown keys"):
        env.reset(options={"idx": 3})


def test_prompt_too_long_errors_or_truncates_left():
    task = from_records([{"prompt": "x" * 100, "reference": "y"}])
    env = make(task=task, max_prompt_tokens=32)
    with pytest.raises(PromptTooLongError, match="max_prompt_tokens=32"):
        env.reset(seed=0)
    with pytest.raises(ResetNeeded):  # the failed reset started no episode
        env.step(70)
    env = make(task=task, max_prompt_tokens=32, prompt_truncation="left")
    obs, _ = env.reset(seed=0)
    full = env.tokenizer(env.prompts.format("x" * 100), add_special_tokens=False)["input_ids"]
    np.testing.assert_array_equal(obs["input_ids"][:32], full[-32:])


def test_outer_time_limit_shorter_than_budget_leaves_reply_unscored_and_warns_once():
    env = gym.make("TextGen-Copy-v0", **{**SMALL, "max_new_tokens": 8}, max_episode_steps=4)
    assert env.unwrapped.spec.max_episode_steps is None  # Gymnasium 1.x: the limit lives in TimeLimit only
    env.reset(seed=0)
    _, (_, reward, terminated, truncated, info) = play(env, [70] * 8)
    assert truncated and not terminated and info["num_tokens"] == 4
    assert not info["scored"] and reward == 0.0 and info["scores"]["reward"] == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env.reset(seed=1)  # a seeded reset is a deliberate restart
    play(env, [70] * 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):  # unseeded, as autoresets do: two cuts at 4 could still be chance
            env.reset()
            play(env, [70] * 8)
    with pytest.warns(UnscoredReplyWarning, match="3 replies in a row at 4 token"):
        env.reset()  # the third cut at the same length: a time limit
    play(env, [70] * 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env.reset()  # warned once per env


def test_resets_that_cut_replies_at_varying_lengths_do_not_warn():
    """A library that resets mid-episode now and then (SB3's learn() called again) is not a time limit."""
    env = gym.make("TextGen-Copy-v0", **{**SMALL, "max_new_tokens": 8})
    env.reset(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for length in (3, 5, 2, 5, 1):
            play(env, [70] * length)
            env.reset()
    # Not a deaf detector: the last cut was at 1 token, and two more there make three in a row.
    play(env, [70])
    env.reset()
    play(env, [70])
    with pytest.warns(UnscoredReplyWarning, match="3 replies in a row at 1 token"):
        env.reset()


@pytest.mark.parametrize("max_episode_steps, shaping", [(8, "sparse"), (None, "sparse"), (4, "delta")])
def test_no_warning_when_no_reward_is_lost(max_episode_steps, shaping):
    # Equal budgets, no outer limit, or delta rewards (already paid on every step): nothing to warn of.
    kwargs = {**SMALL, "max_new_tokens": 8, "reward_shaping": shaping}
    env = gym.make("TextGen-Copy-v0", **kwargs, max_episode_steps=max_episode_steps)
    env.reset(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            *_, info = play(env, [70] * 8)[1]
            env.reset()  # unseeded, as autoresets do
    assert info["scored"] and info["num_tokens"] == min(8, max_episode_steps or 8)


def test_reward_returning_nan_raises():
    def broken(prompts, outputs, references):
        return [float("nan")] * len(outputs)

    env = make(reward=broken, max_new_tokens=1)
    env.reset(seed=0)
    with pytest.raises(RewardError, match="broken"):
        env.step(70)


def test_sample_type_round_trips():
    env = make()
    prompt, references = env.task[0]
    assert isinstance(env.task[0], Sample) and isinstance(prompt, str) and references


@pytest.mark.slow
def test_default_env_is_smollm2_qa_bleu():
    env = gym.make("TextGen-v0")
    base = env.unwrapped
    assert base.action_space.n == 49152 and base.max_new_tokens == 32
    assert base.task.name == "qa" and base.reward.components == ("bleu",)
    obs, info = env.reset(seed=0)
    text = base.tokenizer.decode(obs["input_ids"][obs["attention_mask"] == 1])
    assert "<|im_start|>user" in text and info["prompt"] in text
    check_text_env(env)
