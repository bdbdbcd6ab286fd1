"""QATask: the real chatterbot corpus, record validation, grouping and splits."""

from __future__ import annotations

import pickle

import pytest

from text_gym.errors import DatasetError, MissingAssetError
from text_gym.tasks import SPLITS, QATask, make_task, split_of
from text_gym.tasks import qa as qa_module
from text_gym.tasks.qa import normalize_question

BAD_RECORDS = """\
categories: [test]
conversations:
- - What is AI?
  - The study of thinking machines.
- - "  what  is ai? "
  - A field of science.
- - What is AI?
  - The study of thinking machines.
- a bare string, not a conversation
- - Hello
  - 42
  - Nice to meet you.
- - ""
  - Orphan answer.
- - Are you a robot?
  - "   "
- - Good morning
  - Good morning to you.
  - How are you?
  - null
"""


def test_bad_records_are_skipped_counted_and_grouped(tmp_path):
    (tmp_path / "test.yml").write_text(BAD_RECORDS, encoding="utf-8")
    groups, stats = qa_module.read_corpus(str(tmp_path))
    samples = {question: refs for question, refs, _ in groups.values()}
    # Identical questions (case and spaces aside) merge, keeping the first text; repeated answers count once.
    assert samples.pop("What is AI?") == ("The study of thinking machines.", "A field of science.")
    # Adjacent pairs, never bridging a skipped utterance.
    assert samples == {"Good morning": ("Good morning to you.",), "Good morning to you.": ("How are you?",)}
    assert (stats.skipped_conversations, stats.skipped_utterances, stats.dropped_pairs) == (1, 4, 5)
    assert stats.pairs == 5 and stats.questions == 3 and stats.files == 1
    task = QATask(split_of("what is ai?"), folder=tmp_path)
    assert (
        task.skipped == 5
        and task.stats == stats
        and ("What is AI?", "test") in [(p, c) for (p, _), c in zip(task, task.categories, strict=True)]
    )


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("conversations: [unclosed\n", "invalid YAML"),
        ("categories: [x]\n", "expected a mapping with a 'conversations' list"),
    ],
)
def test_malformed_files_raise_naming_the_file(tmp_path, text, match):
    (tmp_path / "broken.yml").write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError, match=match) as info:
        QATask(folder=tmp_path)
    assert "broken.yml" in str(info.value)


def test_empty_folder_and_missing_package(tmp_path, monkeypatch):
    with pytest.raises(DatasetError, match=r"has no \*\.yml files"):
        QATask(folder=tmp_path)
    monkeypatch.setattr(qa_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingAssetError, match="pip install chatterbot-corpus==1.3.3"):
        QATask("train")


def test_real_corpus_size_splits_and_order():
    tasks = {split: make_task("qa", split) for split in SPLITS}
    assert sum(len(t) for t in tasks.values()) > 1000
    assert len(tasks["train"]) > 700 and len(tasks["validation"]) > 50 and len(tasks["test"]) > 50
    keys = {split: [normalize_question(p) for p, _ in task] for split, task in tasks.items()}
    assert all(keys[s] == sorted(keys[s]) and len(set(keys[s])) == len(keys[s]) for s in SPLITS)
    assert not set(keys["train"]) & set(keys["validation"]) and not set(keys["train"]) & set(keys["test"])
    assert not set(keys["validation"]) & set(keys["test"])
    assert all(split_of(k) == s for s in SPLITS for k in keys[s])
    train = tasks["train"]
    assert train.name == "qa" and len(train.categories) == len(train) and "trivia" in train.categories
    assert any(len(refs) > 1 for _, refs in train)
    assert all(p == p.strip() and all(r == r.strip() and r for r in refs) for p, refs in train)


def test_qa_is_stable_and_pickles():
    fresh = QATask("validation")
    assert list(fresh) == list(make_task("qa", "validation"))
    clone = pickle.loads(pickle.dumps(fresh))
    assert list(clone) == list(fresh) and clone.categories == fresh.categories and clone.stats == fresh.stats
