"""Checkpoint selection on validation: the best step (ties to the earlier), schedules, best-model saving."""

from __future__ import annotations

import time

import pytest
import torch

from agents.baselines.lm import GreedyLMAgent
from agents.evaluation import evaluate
from agents.trainers.grpo import GRPO
from agents.trainers.selection import ValidationSelection

ECHO = {"tokenizer": "tiny", "max_new_tokens": 3}


def grpo(**kwargs) -> GRPO:
    defaults = {"env_kwargs": ECHO, "n_envs": 4, "group_size": 2, "seed": 0, "verbose": 0, "learning_rate": 1e-2}
    return GRPO("tiny", "TextGen-EchoLetter-v0", **{**defaults, **kwargs})


class Scripted(ValidationSelection):
    """Scores come from a script instead of playing, so the bookkeeping can be checked by hand."""

    def __init__(self, scores, **kwargs) -> None:
        super().__init__("TextGen-EchoLetter-v0", ECHO, max_prompts=2, **kwargs)
        self.scores = list(scores)

    def _score(self, policy) -> float:
        return self.scores.pop(0)


def trainable(trainer) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in trainer.policy.named_parameters() if p.requires_grad}


def nudge(trainer, amount: float) -> None:
    with torch.no_grad():
        for p in trainer.policy.parameters():
            if p.requires_grad:
                p.add_(amount)


def test_the_best_step_wins_and_a_tie_goes_to_the_earlier():
    trainer = grpo()
    selection = Scripted([0.2, 0.5, 0.5, 0.1], eval_every=None)
    weights = []
    for step in range(4):
        weights.append(trainable(trainer))
        selection.evaluate(trainer, step=step, phase="rl", train_cpu_seconds=float(step))
        nudge(trainer, 0.01)
    assert (selection.best_step, selection.best_phase, selection.best_score) == (1, "rl", 0.5)
    assert [row["score"] for row in selection.history] == [0.2, 0.5, 0.5, 0.1]
    assert selection.history[2] == {
        "phase": "rl",
        "step": 2,
        "timesteps": 0,
        "train_cpu_seconds": 2.0,
        "score": 0.5,
    }
    selection.restore_best(trainer)
    restored = trainable(trainer)
    assert all(torch.equal(restored[name], weights[1][name]) for name in restored)  # step 1, not the tie at 2


def test_no_training_can_win():
    trainer = grpo()
    selection = Scripted([0.3, 0.1, 0.2], eval_every=None)
    start = trainable(trainer)
    for step, phase in [(0, "supervised"), (4, "supervised"), (0, "rl")]:
        selection.evaluate(trainer, step=step, phase=phase)
        nudge(trainer, 0.01)
    assert (selection.best_phase, selection.best_step) == ("supervised", 0)
    selection.restore_best(trainer)
    assert all(torch.equal(v, start[n]) for n, v in trainable(trainer).items())


def test_schedule_by_iterations_starts_each_phase_with_an_evaluation():
    trainer = grpo()
    selection = Scripted([0.0] * 20, eval_every=3)
    for step in range(8):
        selection.maybe_evaluate(trainer, step=step, phase="supervised", train_cpu_seconds=0.0)
    for step in range(5):
        selection.maybe_evaluate(trainer, step=step, phase="rl", train_cpu_seconds=0.0)
    expected = [("supervised", 0), ("supervised", 3), ("supervised", 6), ("rl", 0), ("rl", 3)]
    assert [(r["phase"], r["step"]) for r in selection.history] == expected
    assert selection.finish(trainer, step=3, phase="rl", train_cpu_seconds=0.0) is None  # already scored
    assert selection.finish(trainer, step=4, phase="rl", train_cpu_seconds=0.0) == 0.0
    assert selection.history[-1]["step"] == 4


def test_schedule_by_training_seconds():
    trainer = grpo()
    selection = Scripted([1.0] * 20, eval_every=None, eval_every_seconds=10.0)
    seconds = [0.0, 4.0, 9.9, 10.0, 15.0, 19.9, 20.5, 31.0]
    due = [
        t for s, t in enumerate(seconds) if selection.maybe_evaluate(trainer, step=s, phase="rl", train_cpu_seconds=t)
    ]
    assert due == [0.0, 10.0, 20.5, 31.0]  # 10 s after the last evaluation, not on a fixed grid
    assert Scripted([], eval_every=None).due(step=0, phase="rl", train_cpu_seconds=0.0) is False  # no schedule
    assert selection.eval_cpu_seconds >= 0.0


def test_selection_on_test_is_refused_and_settings_are_checked():
    with pytest.raises(ValueError, match="has seen the answers"):
        ValidationSelection("TextGen-EchoLetter-v0", ECHO, split="test")
    with pytest.raises(ValueError, match="eval_every"):
        ValidationSelection("TextGen-EchoLetter-v0", ECHO, eval_every=0)
    with pytest.raises(ValueError, match="eval_every_seconds"):
        ValidationSelection("TextGen-EchoLetter-v0", ECHO, eval_every_seconds=-1.0)
    with pytest.raises(RuntimeError, match="at least one evaluation"):
        ValidationSelection("TextGen-EchoLetter-v0", ECHO, max_prompts=1).restore_best(grpo())
    with pytest.raises(ValueError, match="metric"):
        ValidationSelection("TextGen-EchoLetter-v0", ECHO, max_prompts=1, metric="nope").evaluate(
            grpo(), step=0, phase="rl"
        )


def test_the_saved_best_model_replies_as_the_restored_best(tmp_path):
    # chrF on the copy task gives the tiny model's samples partial credit: every update moves the weights.
    copy = {"tokenizer": "tiny", "reward": "chrf", "max_new_tokens": 6}
    trainer = GRPO("tiny", "TextGen-Copy-v0", env_kwargs=copy, n_envs=8, group_size=4, seed=0, verbose=0)
    selection = Scripted([0.1, 0.9] + [0.2] * 50, eval_every=1, best_model_save_path=tmp_path)
    kept = []
    selection._score = lambda policy, score=selection._score: (kept.append(trainable(trainer)), score(policy))[1]
    trainer.learn(150, callback=selection.callback())
    assert [r["step"] for r in selection.history] == list(range(trainer.iteration + 1))  # at 0, after each update
    assert (selection.best_phase, selection.best_step, selection.best_score) == ("rl", 1, 0.9)
    assert selection.best_model_path == tmp_path / "best_model.zip" and selection.best_model_path.is_file()
    final = trainable(trainer)

    selection.restore_best(trainer)
    restored = trainable(trainer)
    assert all(torch.equal(restored[n], kept[1][n]) for n in restored)  # exactly the weights scored at step 1
    assert any(not torch.equal(restored[n], final[n]) for n in restored)
    loaded = GRPO.load(selection.best_model_path)
    assert loaded.iteration == 1
    assert all(torch.equal(p.cpu(), restored[n]) for n, p in loaded.policy.named_parameters() if n in restored)
    kwargs = {"split": "validation", "n_episodes": 8, "verbose": False}
    ours = evaluate(GreedyLMAgent(trainer.policy), "TextGen-EchoLetter-v0", ECHO, **kwargs)
    theirs = evaluate(GreedyLMAgent(loaded.policy), "TextGen-EchoLetter-v0", ECHO, **kwargs)
    assert [e["tokens"] for e in ours.episodes[0]] == [e["tokens"] for e in theirs.episodes[0]]


def test_warm_start_evaluates_on_schedule_and_its_budget_leaves_evaluations_out():
    trainer = grpo()
    selection = ValidationSelection("TextGen-EchoLetter-v0", ECHO, eval_every=2, max_prompts=4)
    rows = trainer.warm_start(total_tokens=40, batch_size=4, selection=selection)
    steps = [r["step"] for r in selection.history]
    assert {r["phase"] for r in selection.history} == {"supervised"}
    assert steps == [*range(0, len(rows) + 1, 2)] + ([len(rows)] if len(rows) % 2 else [])
    assert selection.history[0]["timesteps"] == 0
    assert selection.history[-1]["timesteps"] == int(rows[-1]["supervised/tokens"])
    assert selection.eval_cpu_seconds > 0
    # each row's CPU time is training only: below the wall of process time that included the evaluations
    assert rows[-1]["supervised/cpu_seconds"] == selection.history[-1]["train_cpu_seconds"]


def test_a_cpu_budget_counts_training_only():
    """A warm start bounded by CPU-seconds trains for its budget, however long the evaluations take."""
    trainer = grpo()
    selection = Scripted([], eval_every=1)
    calls = []

    def slow_score(policy) -> float:
        start = time.process_time()
        while time.process_time() - start < 0.02:  # an evaluation that burns CPU
            pass
        calls.append(len(calls))
        return 0.0

    selection._score = slow_score
    rows = trainer.warm_start(max_seconds=0.2, batch_size=2, selection=selection)
    assert len(calls) == len(rows) + 1  # step 0, then after every step
    assert selection.eval_cpu_seconds >= 0.02 * len(calls)
    assert 0.2 <= rows[-1]["supervised/cpu_seconds"] < selection.eval_cpu_seconds + 0.2
    # counted together, the budget would have run out after 0.2 s of training and evaluating
    assert rows[-1]["supervised/cpu_seconds"] + selection.eval_cpu_seconds > 0.2 + 0.02 * (len(calls) - 1)


def test_selection_does_not_change_training_and_a_cpu_budget_stops_learn():
    plain, selected = grpo(), grpo()
    plain.learn(48)
    selection = ValidationSelection("TextGen-EchoLetter-v0", ECHO, eval_every=1, max_prompts=4)
    selected.learn(48, callback=selection.callback())
    assert len(selection.history) == selected.iteration + 1 >= 3
    for a, b in zip(plain.policy.parameters(), selected.policy.parameters(), strict=True):
        assert torch.equal(a, b)  # evaluating draws no random number that training uses

    budget = grpo()
    callback = selection.callback(max_train_cpu_seconds=1e-9)
    budget.learn(10_000, callback=callback)
    assert budget.iteration == 0 and callback.train_cpu_seconds() > 1e-9  # stopped in its first rollout


def test_a_branch_goes_on_from_where_it_stands():
    trainer = grpo()
    selection = Scripted([0.2, 0.6], eval_every=None)
    selection.evaluate(trainer, step=0, phase="supervised")
    shared = trainable(trainer)
    branch = selection.branch()
    branch.scores = [0.1]
    assert branch.history == selection.history and (branch.best_phase, branch.best_score) == ("supervised", 0.2)
    nudge(trainer, 0.01)
    selection.evaluate(trainer, step=5, phase="supervised")  # 0.6: a new best of the original only
    branch.evaluate(trainer, step=0, phase="rl")  # 0.1: the branch keeps the shared best
    assert [row["score"] for row in selection.history] == [0.2, 0.6]
    assert [(row["phase"], row["score"]) for row in branch.history] == [("supervised", 0.2), ("rl", 0.1)]
    assert (branch.best_phase, branch.best_step, selection.best_step) == ("supervised", 0, 5)
    branch.restore_best(trainer)  # the weights kept before the branch was made
    assert all(torch.equal(v, shared[n]) for n, v in trainable(trainer).items())
    assert branch.due(step=0, phase="supervised", train_cpu_seconds=0.0) is False  # the schedule goes on too
    selection.close()
    branch.close()


def test_a_resumed_selection_keeps_the_earlier_best(tmp_path):
    """selection.json and best_model.zip let a resumed run go on: its first evaluation must beat the old best."""
    trainer = grpo()
    first = Scripted([0.2, 0.9, 0.3], eval_every=None, best_model_save_path=tmp_path)
    for step in range(3):
        if step == 1:
            best_weights = trainable(trainer)
        first.evaluate(trainer, step=step, phase="rl", train_cpu_seconds=float(step))
        nudge(trainer, 0.01)
    assert (tmp_path / "selection.json").is_file()

    resumed = Scripted([0.5, 0.95], eval_every=None, best_model_save_path=tmp_path)
    assert resumed.resume(trainer)
    assert (resumed.best_phase, resumed.best_step, resumed.best_score) == ("rl", 1, 0.9)
    assert resumed.history == first.history
    resumed.restore_best(trainer)
    assert all(torch.equal(p, best_weights[n]) for n, p in trainable(trainer).items())
    nudge(trainer, 0.05)
    resumed.evaluate(trainer, step=3, phase="rl", train_cpu_seconds=3.0)  # 0.5 < 0.9: best_model.zip stays
    kept = GRPO.load(tmp_path / "best_model.zip")
    assert all(torch.equal(p, best_weights[n]) for n, p in trainable(kept).items())
    resumed.evaluate(trainer, step=4, phase="rl", train_cpu_seconds=4.0)  # 0.95: a new best replaces it
    assert (resumed.best_step, resumed.best_score) == (4, 0.95)
    assert [row["score"] for row in resumed.history] == [0.2, 0.9, 0.3, 0.5, 0.95]
    assert not Scripted([], eval_every=None, best_model_save_path=tmp_path / "elsewhere").resume(trainer)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda record: "not json {", "unreadable"),
        (lambda record: {**record, "metric": "chrf"}, "by 'chrf'"),
        (lambda record: {**record, "history": [{"phase": "rl", "step": "1"}]}, "expected rows"),
        (lambda record: {**record, "step": 0}, "not the best of its rows"),
    ],
)
def test_a_bad_selection_file_is_refused(tmp_path, edit, match):
    import json

    trainer = grpo()
    selection = Scripted([0.2, 0.9], eval_every=None, best_model_save_path=tmp_path)
    for step in range(2):
        selection.evaluate(trainer, step=step, phase="rl", train_cpu_seconds=float(step))
    path = tmp_path / "selection.json"
    edited = edit(json.loads(path.read_text()))
    path.write_text(edited if isinstance(edited, str) else json.dumps(edited))
    with pytest.raises(ValueError, match=match):
        Scripted([], eval_every=None, best_model_save_path=tmp_path).resume(trainer)
