"""Synthetic tasks: exact references, determinism, disjoint splits."""

from __future__ import annotations

import pytest

from text_gym.errors import DatasetError
from text_gym.tasks import SPLITS, EchoLetterTask, Sample, SyntheticTask, make_task, number_to_words, split_of
from text_gym.tasks.synthetic import GENERATORS, SIZES, VOCABULARY


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (20, "twenty"),
        (42, "forty-two"),
        (100, "one hundred"),
        (105, "one hundred five"),
        (999, "nine hundred ninety-nine"),
        (1000, "one thousand"),
        (1010, "one thousand ten"),
        (2024, "two thousand twenty-four"),
        (9999, "nine thousand nine hundred ninety-nine"),
    ],
)
def test_number_to_words_known_values(number, words):
    assert number_to_words(number) == words


def test_number_to_words_rejects_out_of_range_and_non_ints():
    with pytest.raises(ValueError, match="0 to 9999, got 10000"):
        number_to_words(10000)
    with pytest.raises(ValueError, match="got -1"):
        number_to_words(-1)
    with pytest.raises(TypeError, match="got float"):
        number_to_words(4.0)


def check_reference(kind: str, prompt: str, reference: str) -> None:
    if kind == "copy":
        assert reference == prompt.removeprefix("Repeat exactly: ")
    elif kind == "reverse":
        assert reference.split() == prompt.removeprefix("Reverse the word order: ").split()[::-1]
    elif kind == "sort":
        assert reference.split() == sorted(prompt.removeprefix("Sort alphabetically: ").split())
    elif kind == "number-words":
        number = int(prompt.removeprefix("Write ").removesuffix(" in words."))
        assert reference == number_to_words(number)
    else:
        expression = prompt.removeprefix("What is ").removesuffix("? Answer with the number.")
        a, op, b = expression.split()
        assert (
            reference == str(eval(f"{int(a)} {op} {int(b)}")) and int(reference) >= 0
        )  # the task's own two ints and operator


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_every_reference_is_exact(kind):
    task = make_task(kind, "validation")
    assert task.name == kind and len(task) == SIZES["validation"]
    for prompt, references in task:
        assert len(references) == 1
        check_reference(kind, prompt, references[0])
    if kind in ("copy", "reverse", "sort"):
        assert all(w in VOCABULARY for p, _ in task for w in p.split(": ")[1].split())


def test_known_prompts():
    assert tuple(EchoLetterTask()[0]) == ("Say: a", ("a",))
    check_reference("arithmetic", "What is 7 * 8? Answer with the number.", "56")
    check_reference("sort", "Sort alphabetically: river apple stone", "apple river stone")


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_deterministic_and_splits_disjoint(kind):
    splits = {split: SyntheticTask(kind, split) for split in SPLITS}
    assert [len(splits[s]) for s in SPLITS] == [SIZES[s] for s in SPLITS]
    again = SyntheticTask(kind, "test")
    assert list(again) == list(splits["test"])
    prompts = {split: {p for p, _ in task} for split, task in splits.items()}
    assert all(len(prompts[s]) == SIZES[s] for s in SPLITS)  # no duplicates within a split
    assert not prompts["train"] & prompts["validation"] and not prompts["train"] & prompts["test"]
    assert not prompts["validation"] & prompts["test"]
    assert all(split_of(p) == s for s in SPLITS for p in prompts[s])


def test_size_argument_and_errors(monkeypatch):
    assert len(SyntheticTask("copy", "train", size=5)) == 5
    assert list(SyntheticTask("copy", "train", size=5)) == list(SyntheticTask("copy", "train"))[:5]
    with pytest.raises(ValueError, match="Expected kind to be one of"):
        SyntheticTask("nope")
    with pytest.raises(ValueError, match="positive int, got 0"):
        SyntheticTask("copy", size=0)
    monkeypatch.setitem(GENERATORS, "constant", lambda rng: Sample("Say: x", ("x",)))
    with pytest.raises(DatasetError, match="only [01] distinct 'constant' prompts"):
        SyntheticTask("constant", "train", size=2)


def test_echo_letter_is_the_same_tiny_task_in_every_split():
    tasks = [EchoLetterTask(split) for split in SPLITS]
    assert all(list(t) == list(tasks[0]) for t in tasks) and len(tasks[0]) == 26
    assert all(p == f"Say: {r[0]}" and len(r[0]) == 1 and r[0].islower() for p, r in tasks[0])
