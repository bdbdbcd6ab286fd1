"""The leaderboard refuses bad settings up front, reports damaged logs clearly, and keys reruns by content."""

from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path

import pytest

from benchmarks import common, leaderboard
from benchmarks.leaderboard import Args
from benchmarks.leaderboard_runs import finished_runs
from text_gym.errors import run_command


@pytest.mark.parametrize(
    ("agents", "shared"),
    [
        (["greedy", "greedy"], "['greedy']"),
        (["x=greedy", "x=beam"], "['x']"),
        (["ckpt:a/model.zip", "ckpt:a/model.zip", "random"], "['trained (a/model.zip)']"),
    ],
)
def test_agents_that_share_a_label_are_refused(agents, shared):
    with pytest.raises(
        ValueError, match=rf"expected one agent per label, got 1 repeated label\(s\) {re.escape(shared)}"
    ):
        Args(agents=agents, model="tiny")


def test_same_kind_agents_with_their_own_labels_are_accepted():
    assert Args(agents=["a=greedy", "b=greedy", "sampling"], model="tiny").agents[0] == "a=greedy"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("temperature", math.nan, "temperature: expected a finite float > 0"),
        ("temperature", math.inf, "temperature: expected a finite float > 0"),
        ("seeds", [0, -1], "seeds: expected an int >= 0"),
        ("threads", -1, "threads: expected a positive int"),
    ],
)
def test_bad_settings_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        Args(model="tiny", **{field: value})


@pytest.mark.parametrize("line", [b"\xff\xfe not utf-8\n", b'{"key": 1, "run": \x80}\n'])
def test_non_utf8_bytes_in_runs_jsonl_name_the_file_and_line(tmp_path, line):
    log = tmp_path / "runs.jsonl"
    log.write_bytes(b'{"key": {"a": 1}, "run": {}}\n' + line)
    with pytest.raises(ValueError, match=rf"Expected UTF-8 text in {log}, got undecodable bytes on line 2"):
        finished_runs(log, fresh=False)


def test_a_line_that_is_not_an_object_is_named(tmp_path):
    log = tmp_path / "runs.jsonl"
    log.write_text('{"key": {}, "run": {}}\n[1, 2]\n')
    with pytest.raises(ValueError, match="Expected a JSON object on line 2"):
        common.read_jsonl(log)


def test_the_leaderboard_reports_a_damaged_log_in_one_line(tmp_path, capsys):
    (tmp_path / "runs.jsonl").write_bytes(b"\xff\n")
    argv = ["--quick", "--agents", "reference", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as stop:
        run_command(leaderboard.main, "python -m benchmarks.leaderboard", argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith("python -m benchmarks.leaderboard: error: Expected UTF-8 text")


def _model_folder(path: Path, weights: bytes) -> Path:
    path.mkdir()
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(weights)
    return path


def test_model_folders_key_by_content_device_and_threads(tmp_path):
    folder = _model_folder(tmp_path / "model", b"0" * 64)
    args = Args(agents=[f"greedy:{folder}"], model="tiny", threads=1, device="cpu")
    key = leaderboard.run_key(args, f"greedy:{folder}", "copy", 0)
    assert key["device"] == "cpu" and key["threads"] == 1
    os.utime(folder / "model.safetensors", ns=(1, 1))  # touched: the same weights
    assert leaderboard.run_key(args, f"greedy:{folder}", "copy", 0) == key
    (tmp_path / "new.safetensors").write_bytes(b"1" * 64)  # replaced weights, same size
    os.replace(tmp_path / "new.safetensors", folder / "model.safetensors")
    os.utime(folder / "model.safetensors", ns=(1, 1))  # and even the same mtime
    assert leaderboard.run_key(args, f"greedy:{folder}", "copy", 0) != key
    shutil.rmtree(folder)
    _model_folder(folder, b"0" * 64)  # the original weights back: the original key
    assert leaderboard.run_key(args, f"greedy:{folder}", "copy", 0) == key
    assert (
        leaderboard.run_key(
            Args(agents=["greedy"], model="tiny", threads=2, device="cpu"), f"greedy:{folder}", "copy", 0
        )
        != key
    )
