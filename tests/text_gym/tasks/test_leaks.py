"""Splits that cannot leak: one key for prompts a reader cannot tell apart, disjoint split files, checked task objects."""

from __future__ import annotations

import json
import unicodedata

import pytest

from text_gym.envs import TextGenEnv
from text_gym.errors import DatasetError
from text_gym.tasks import SPLITS, Sample, from_records, make_task, split_of
from text_gym.tasks.base import normalize_text, sample_key

BASE = "Réécris en français simple : le café est fermé."
# Spellings of BASE that look the same to a reader (or differ only in case and spacing).
VARIANTS = {
    "nfd": unicodedata.normalize("NFD", BASE),
    "zero-width space": BASE.replace("café", "caf\u200bé"),
    "zero-width joiner": BASE.replace("fermé", "fer\u200dmé"),
    "byte-order mark": "\ufeff" + BASE,
    "soft hyphen": BASE.replace("français", "fran\u00adçais"),
    "left-to-right mark": BASE + "\u200e",
    "full-width letters": BASE.replace("le café", "ｌｅ café"),
    "no-break space": BASE.replace(" : ", "\u00a0: "),
    "case and spaces": "  " + BASE.upper().replace(" ", "   ") + "\n",
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_lookalike_prompts_share_one_key_and_one_split(name):
    variant = VARIANTS[name]
    assert variant != BASE
    assert normalize_text(variant) == normalize_text(BASE)
    assert split_of(sample_key(Sample(variant, ("x",)))) == split_of(sample_key(Sample(BASE, ("x",))))


def test_lookalike_records_become_one_sample():
    records = [{"prompt": BASE, "reference": "a"}] + [{"prompt": v, "reference": k} for k, v in VARIANTS.items()]
    task = from_records(records, split="all")
    assert len(task) == 1 and task[0].references == ("a", *VARIANTS)


def test_lookalike_prompts_hash_to_one_split_across_many_prompts():
    # Over many prompts, the NFD form and a zero-width copy land in the split of the NFC original.
    prompts = [f"Résumé n°{i}: où est l'hôtel ?" for i in range(200)]
    for prompt in prompts:
        split = split_of(normalize_text(prompt))
        assert split_of(normalize_text(unicodedata.normalize("NFD", prompt))) == split
        assert split_of(normalize_text(prompt.replace(" ", " \u200b", 1))) == split


def _write(path, prompts):
    path.write_text("".join(json.dumps({"prompt": p, "reference": "r"}) + "\n" for p in prompts), encoding="utf-8")
    return str(path)


def test_split_files_that_share_prompts_are_refused_with_the_prompts_and_count(tmp_path):
    train = _write(tmp_path / "train.jsonl", [f"train prompt {i}" for i in range(20)] + [BASE, "Shared two"])
    test = _write(tmp_path / "test.jsonl", ["test prompt", VARIANTS["nfd"], "SHARED   two"])
    for split in ("train", "test", "all"):
        with pytest.raises(DatasetError, match="share 2 prompt") as caught:
            make_task({"train": train, "test": test}, split)
        message = str(caught.value)
        assert "train (" in message and "test (" in message and "SHARED   two" in message
        assert "allow_overlap" in message
    assert len(make_task({"train": train, "test": test, "allow_overlap": True}, "test")) == 3


def test_the_same_file_for_two_splits_is_refused(tmp_path):
    path = _write(tmp_path / "data.jsonl", ["a", "b", "c"])
    with pytest.raises(DatasetError, match="share 3 prompt"):
        make_task({"train": path, "validation": path}, "train")
    assert len(make_task({"train": path, "validation": path, "allow_overlap": True}, "validation")) == 3


def test_disjoint_split_files_are_accepted(tmp_path):
    train = _write(tmp_path / "train.jsonl", ["a", "b"])
    test = _write(tmp_path / "test.jsonl", ["c"])
    assert [len(make_task({"train": train, "test": test}, s)) for s in ("train", "test", "all")] == [2, 1, 3]


@pytest.mark.parametrize("flag", ["yes", 1, None])
def test_the_opt_out_must_be_a_bool(tmp_path, flag):
    train = _write(tmp_path / "train.jsonl", ["a"])
    with pytest.raises(TypeError, match="allow_overlap"):
        make_task({"train": train, "allow_overlap": flag}, "train")


class _Empty:
    name = "empty"

    def __len__(self):
        return 0

    def __getitem__(self, index):
        raise IndexError(index)


class _Pairs:
    name = "pairs"

    def __len__(self):
        return 2

    def __getitem__(self, index):
        return ("Say hi", ("hi",))


class _Strings(_Pairs):
    name = "strings"

    def __getitem__(self, index):
        return "Say hi"


class _LateTuple(_Pairs):
    name = "late"

    def __getitem__(self, index):
        return Sample("Say hi", ("hi",)) if index == 0 else ("Say hi", ("hi",))


@pytest.mark.parametrize(
    ("task", "match"),
    [
        (_Empty(), "'empty' has 0 samples"),
        (_Pairs(), r"task\[0\] to be a text_gym.tasks.Sample, got tuple"),
        (_Strings(), r"task\[0\] to be a text_gym.tasks.Sample, got str"),
    ],
)
def test_bad_task_objects_fail_clearly_when_made(task, match):
    with pytest.raises(DatasetError, match=match):
        make_task(task)
    with pytest.raises(DatasetError, match=match):
        TextGenEnv(task=task, tokenizer="tiny")


def test_a_task_object_that_yields_a_tuple_later_fails_clearly_at_reset():
    env = TextGenEnv(task=_LateTuple(), tokenizer="tiny")
    env.reset(seed=0, options={"index": 0})
    with pytest.raises(DatasetError, match=r"'late': expected task\[1\] to be a text_gym.tasks.Sample, got tuple"):
        env.reset(seed=0, options={"index": 1})


def test_split_sizes_of_the_registered_tasks():
    # The README quotes these; the learning results in benchmarks/results predate the NFKC key
    # only for translation, where 2 samples moved (see CHANGELOG).
    assert [len(make_task("qa", s)) for s in SPLITS] == [828, 88, 98]
    assert [len(make_task("copy", s)) for s in SPLITS] == [2000, 200, 200]


@pytest.mark.parametrize(("name", "sizes"), [("translate-fr", [588, 69, 66]), ("translate-de", [574, 67, 78])])
def test_split_sizes_of_the_translation_tasks(name, sizes):
    pytest.importorskip("django")  # the catalogues ship inside Django's wheel
    assert [len(make_task(name, s)) for s in SPLITS] == sizes
