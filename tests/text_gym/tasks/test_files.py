"""from_jsonl and from_records: good files and every error path."""

from __future__ import annotations

import json

import pytest

from text_gym.errors import DatasetError
from text_gym.tasks import from_jsonl, from_records


def write(tmp_path, text: str, name: str = "data.jsonl"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_from_jsonl_reads_both_reference_forms_and_skips_blank_lines(tmp_path):
    lines = [{"prompt": "Say hi", "reference": "hi", "id": 7}, {"prompt": "Greet", "references": ["hello", "hey"]}]
    path = write(tmp_path, "\ufeff" + json.dumps(lines[0]) + "\n\n   \n" + json.dumps(lines[1]) + "\n")
    task = from_jsonl(path, split="all")
    assert task.name == "data" and len(task) == 2
    assert tuple(task[0]) == ("Say hi", ("hi",)) and task[1].references == ("hello", "hey")
    assert from_jsonl(str(path), name="mine", split="all").name == "mine"


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ('{"prompt": "a", "reference": "b"}\n{"prompt": "a", \n', 2, "invalid JSON"),
        ('\n["prompt", "a"]\n', 2, "expected an object .* got list"),
        ('{"reference": "b"}\n', 1, "missing 'prompt'"),
        ('{"prompt": "a"}\n', 1, "exactly one of 'reference' .* or 'references'"),
        ('{"prompt": "a", "reference": "b", "references": ["c"]}\n', 1, "got both"),
        ('{"prompt": "a", "references": []}\n', 1, "empty list"),
        ('{"prompt": "a", "references": "b"}\n', 1, "expected 'references' to be a list"),
        ('{"prompt": 5, "reference": "b"}\n', 1, "expected 'prompt' to be a non-empty string, got 5"),
        ('{"prompt": "a", "reference": 5}\n', 1, "expected 'reference' to hold non-empty strings, got 5"),
        ('{"prompt": "a", "references": ["b", null]}\n', 1, "got None"),
        ('{"prompt": "  ", "reference": "b"}\n', 1, "non-empty string"),
        ('{"prompt": "a", "reference": "b", "split": "dev"}\n', 1, "expected 'split' to be one of .* got 'dev'"),
        ('{"prompt": "a", "reference": "b", "source": ""}\n', 1, "expected 'source' to be a non-empty string"),
        (
            '{"prompt": "a", "reference": "b", "split": "test"}\n{"prompt": "A", "reference": "c", "split": "train"}\n',
            2,
            "line 1, with split 'test'; expected the same split, got 'train'",
        ),
    ],
)
def test_from_jsonl_errors_name_file_and_line(tmp_path, text, line, match):
    path = write(tmp_path, text)
    with pytest.raises(DatasetError, match=match) as info:
        from_jsonl(path, split="all")
    assert f"{path}, line {line}:" in str(info.value)


def test_from_jsonl_empty_file_missing_file_and_bad_bytes(tmp_path):
    path = write(tmp_path, "\n  \n")
    with pytest.raises(DatasetError, match="has no records") as info:
        from_jsonl(path)
    assert str(path) in str(info.value)
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        from_jsonl(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"prompt": "a", "reference": "b"}\n\xff\xfe\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl, line 2: expected UTF-8"):
        from_jsonl(bad)


def test_from_records_builds_task_and_names_record_index():
    task = from_records(iter([{"prompt": "Say hi", "reference": "hi"}]), name="r", split="all")
    assert task.name == "r" and tuple(task[0]) == ("Say hi", ("hi",))
    with pytest.raises(DatasetError, match="record 1: missing 'prompt'"):
        from_records([{"prompt": "a", "reference": "b"}, {"text": "a"}])
    with pytest.raises(DatasetError, match="No records"):
        from_records([])
    with pytest.raises(TypeError, match="iterable of mappings"):
        from_records({"prompt": "a", "reference": "b"})
