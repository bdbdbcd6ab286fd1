"""Splits of user data: disjoint, covering, stable across processes, grouped, pinned by fields or files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from text_gym.errors import DatasetError
from text_gym.tasks import SPLITS, from_records, make_task, split_of
from text_gym.tasks.base import normalize_text


def rewriting_records(n: int = 300) -> list[dict]:
    # The shape of the user report in the issue: an instruction prompt around the sentence to rewrite.
    return [
        {
            "prompt": f"Rewrite in simple English: sentence number {i} is rather verbose.",
            "reference": f"sentence {i} is long.",
        }
        for i in range(n)
    ]


def write_jsonl(path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def test_splits_are_disjoint_cover_the_file_and_follow_the_hash(tmp_path):
    path = tmp_path / "rewrite.jsonl"
    write_jsonl(path, rewriting_records())
    parts = {split: make_task(path, split) for split in SPLITS}
    prompts = {split: {s.prompt for s in task} for split, task in parts.items()}
    assert sum(map(len, prompts.values())) == 300 == len(set().union(*prompts.values()))
    assert all(split_of(normalize_text(p)) == split for split, ps in prompts.items() for p in ps)
    sizes = [len(prompts[s]) for s in SPLITS]
    assert 200 <= sizes[0] <= 280 and all(15 <= n <= 50 for n in sizes[1:]), sizes  # about 80/10/10
    assert len(make_task(path, "all")) == 300
    assert parts["test"].split == "test" and parts["test"].split_sizes == dict(zip(SPLITS, sizes, strict=True))


def test_splits_are_the_same_in_a_fresh_process(tmp_path):
    path = tmp_path / "rewrite.jsonl"
    write_jsonl(path, rewriting_records())
    code = (
        "import sys; from text_gym.tasks import make_task; "
        "print('\\n'.join(s.prompt for s in make_task(sys.argv[1], 'test')))"
    )
    env = {"PYTHONHASHSEED": "123", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.splitlines() == [s.prompt for s in make_task(path, "test")]


def test_repeated_prompts_become_one_sample_with_all_references():
    records = [
        {"prompt": "Say hi", "reference": "hi"},
        {"prompt": "  say   HI ", "references": ["hello", "hi"]},
        {"prompt": "Rewrite: a", "source": "a", "reference": "A"},
        {"prompt": "Rewrite: a", "source": "b", "reference": "B"},  # same instruction, another source
    ]
    task = from_records(records, split="all")
    assert len(task) == 3
    assert task[0].prompt == "Say hi" and task[0].references == ("hi", "hello")
    assert [(s.source, s.references) for s in task][1:] == [("a", ("A",)), ("b", ("B",))]
    assert task[0].source == "Say hi" and not task[0].has_source and task[1].has_source


def test_a_record_split_field_wins_over_the_hash():
    records = [{"prompt": f"q{i}", "reference": "r", "split": "test"} for i in range(20)]
    assert len(from_records(records, split="test")) == 20
    with pytest.raises(DatasetError, match=r"the 'train' split is empty; its 20 distinct prompts went to .*'test': 20"):
        from_records(records, split="train")


def test_a_mapping_gives_each_split_its_file(tmp_path):
    train, test = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_jsonl(train, rewriting_records(50))
    write_jsonl(test, [{"prompt": "held out", "reference": "x"}])
    files = {"train": str(train), "test": str(test)}
    assert len(make_task(files, "train")) == 50  # used whole, no hash
    assert [s.prompt for s in make_task(files, "test")] == ["held out"]
    assert len(make_task(files, "all")) == 51
    with pytest.raises(ValueError, match="no file for split 'validation'"):
        make_task(files, "validation")
    write_jsonl(test, [{"prompt": "held out", "reference": "x", "split": "train"}])
    with pytest.raises(DatasetError, match="given for the 'test' split, but the record says split 'train'"):
        make_task(files, "test")


def test_the_env_reads_the_split_of_a_file(tmp_path):
    import gymnasium as gym

    import text_gym  # noqa: F401

    path = tmp_path / "rewrite.jsonl"
    write_jsonl(path, rewriting_records())
    env = gym.make("TextGen-v0", task=str(path), split="test", tokenizer="tiny", max_prompt_tokens=128)
    test_prompts = {s.prompt for s in make_task(path, "test")}
    for seed in range(5):
        _, info = env.reset(seed=seed)
        assert info["prompt"] in test_prompts
    with pytest.raises(ValueError, match="got 'dev'"):
        gym.make("TextGen-v0", task=str(path), split="dev", tokenizer="tiny")
