"""make_task, register_task and task_names."""

from __future__ import annotations

import json
import pickle

import pytest

import text_gym.tasks as tasks
from text_gym.errors import UnknownNameError
from text_gym.tasks import ListTask, Sample, make_task, register_task, task_names

BUILT_IN = {"qa", "copy", "reverse", "sort", "number-words", "arithmetic", "echo-letter"}


@pytest.fixture
def clean_registry(monkeypatch):
    # Tests that register names must not leak them into other tests.
    monkeypatch.setattr(tasks, "_FACTORIES", dict(tasks._FACTORIES))
    yield
    tasks._build.cache_clear()


def test_built_in_names_and_per_process_cache():
    assert BUILT_IN <= set(task_names()) and task_names() == sorted(task_names())
    assert make_task("copy", "test") is make_task("copy", "test")
    assert make_task("copy", "test") is not make_task("copy", "train")


def test_unknown_name_lists_known_names():
    with pytest.raises(UnknownNameError, match="Unknown task 'no-such-task'.*'copy'.*'qa'.*jsonl"):
        make_task("no-such-task")


def test_bad_split_and_bad_object():
    with pytest.raises(ValueError, match=r"one of \('train', 'validation', 'test', 'all'\), got 'valid'"):
        make_task("copy", "valid")
    with pytest.raises(TypeError, match="got int"):
        make_task(3)
    with pytest.raises(ValueError, match=r"mapping of splits .* to .jsonl files, got keys \['prompt'\]"):
        make_task({"prompt": "a"})
    with pytest.raises(TypeError, match="a .jsonl path, got"):
        make_task({"train": 3})


def test_objects_lists_and_jsonl_paths(tmp_path):
    task = ListTask([("Say: a", "a")], name="mine")
    assert make_task(task, "test") is task
    assert make_task([("Say: b", ["b"])])[0] == Sample("Say: b", ("b",))
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"prompt": "p", "reference": "r", "split": "test"}) + "\n", encoding="utf-8")
    assert (
        [tuple(s) for s in make_task(path, "test")]
        == [tuple(s) for s in make_task(str(path), "all")]
        == [("p", ("r",))]
    )
    path.write_text(
        json.dumps({"prompt": "p", "reference": "r", "split": "test"})
        + "\n"
        + json.dumps({"prompt": "q", "reference": "s", "split": "test"})
    )
    assert len(make_task(path, "test")) == 2  # an edited file is read again
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        make_task(str(tmp_path / "missing.jsonl"))


def factory(split: str) -> ListTask:
    return ListTask([(f"Say: {split}", split)], name="splitty")


def test_register_task_overwrite_and_bad_factories(clean_registry):
    register_task("splitty", factory)
    assert "splitty" in task_names() and make_task("splitty", "validation")[0].references == ("validation",)
    with pytest.raises(ValueError, match="already registered; pass overwrite=True"):
        register_task("splitty", factory)
    register_task("splitty", lambda split: ListTask([("x", "y")], name="other"), overwrite=True)
    assert make_task("splitty").name == "other"  # the cache was cleared
    register_task("not-a-task", lambda split: [("x", "y")])
    with pytest.raises(TypeError, match="returned a list; expected a Task"):
        make_task("not-a-task")
    with pytest.raises(ValueError, match="not a file path"):
        register_task("data.jsonl", factory)
    with pytest.raises(TypeError, match="callable"):
        register_task("x", "not callable")


@pytest.mark.parametrize("name", sorted(BUILT_IN - {"qa"}))
def test_built_in_tasks_pickle(name):
    task = make_task(name, "validation")
    clone = pickle.loads(pickle.dumps(task))
    assert type(clone) is type(task) and clone.name == task.name and list(clone) == list(task)
