"""Sample, ListTask validation and split_of."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from text_gym.errors import DatasetError
from text_gym.tasks import SPLITS, ListTask, Sample, Task, base, split_of

ROOT = Path(base.__file__).parents[2]  # where `import text_gym` works


def test_sample_unpacks_and_list_task_normalises_references():
    task = ListTask([Sample("Say: a", ("a",)), ("Say: b", "b"), ("Say: c", ["c", "C"])], name="letters")
    prompt, references = task[2]
    assert (prompt, references) == ("Say: c", ("c", "C"))
    assert task[1] == Sample("Say: b", ("b",)) and len(task) == 3 and task.name == "letters"
    assert isinstance(task, Task) and list(task)[0].prompt == "Say: a"


@pytest.mark.parametrize(
    ("samples", "match"),
    [
        ([], "no samples"),
        ([("ok", "ok"), ("", "x")], r"sample 1: expected the prompt to be a non-empty str, got ''"),
        ([(3, "x")], r"sample 0: expected the prompt .* got 3"),
        ([("p", [])], r"sample 0: expected at least one reference"),
        ([("p", ["a", " "])], r"sample 0: expected every reference to be a non-empty str, got ' '"),
        ([("p", [None])], r"got None"),
        (["just a string"], r"sample 0: expected a \(prompt, references\) pair"),
        ([("p", "r", "extra")], r"sample 0: expected a \(prompt, references\) pair"),
    ],
)
def test_list_task_rejects_bad_samples_naming_the_index(samples, match):
    with pytest.raises(DatasetError, match=match):
        ListTask(samples)


def test_list_task_pickles():
    task = ListTask([("Say: a", "a")], name="x")
    clone = pickle.loads(pickle.dumps(task))
    assert clone.name == "x" and clone[0] == task[0]


def test_split_of_is_deterministic_across_processes_and_roughly_proportional():
    keys = [f"question {i}" for i in range(2000)]
    here = [split_of(k) for k in keys[:20]]
    code = "from text_gym.tasks.base import split_of; print(' '.join(split_of(f'question {i}') for i in range(20)))"
    # A fresh interpreter with a different hash seed must agree: splits do not use hash().
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONHASHSEED": "123"},
    )
    assert other.stdout.split() == here
    counts = {s: sum(split_of(k) == s for k in keys) for s in SPLITS}
    assert 1500 < counts["train"] < 1700 and 120 < counts["validation"] < 280 and 120 < counts["test"] < 280
    assert {split_of(k, (0.0, 1.0, 0.0)) for k in keys[:50]} == {"validation"}


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.5, 0.6, -0.1), (0.3, 0.3, 0.3)])
def test_split_of_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError, match="sum to 1"):
        split_of("x", fractions)
