"""`python -m agents.train`: bad settings fail before any work in one line; --env module:Id; what it says at start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agents.train import main, parse_args
from text_gym.errors import run_command


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--kl", "nan"], "argument --kl: expected a finite float >= 0, got nan"),
        (["--kl", "inf"], "argument --kl: expected a finite float >= 0, got inf"),
        (["--kl", "-0.1"], "argument --kl: expected a finite float >= 0"),
        (["--checkpoint-minutes", "nan"], "argument --checkpoint-minutes: expected a finite float >= 0"),
        (["--checkpoint-minutes", "-1"], "argument --checkpoint-minutes: expected a finite float >= 0"),
        (["--warm-start-tokens", "-5"], "argument --warm-start-tokens: expected an int >= 0, got -5"),
        (["--eval-episodes", "-5"], "argument --eval-episodes: expected an int >= 0 (or -1 for the whole split)"),
        (["--warm-start-lr", "nan"], "argument --warm-start-lr: expected a finite float > 0, got nan"),
        (["--learning-rate", "inf"], "argument --learning-rate: expected a finite float > 0"),
        (["--temperature", "nan"], "argument --temperature: expected a finite float > 0"),
        (["--threads", "-1"], "argument --threads: expected an int >= 0, got -1"),
        (["--n-envs", "-4"], "argument --n-envs: expected a positive int"),
        (["--lora", "-8"], "argument --lora: expected an int >= 0"),
        (["--seed", "-1"], "argument --seed: expected an int >= 0"),
        (["--kl", "x"], "argument --kl: expected a number, got 'x'"),
        (["--out", "README.md"], "--out: expected a folder (new or existing), got 'README.md'"),
        (["--out", "README.md/run"], "where README.md is a file"),
        (["--model", "README.md"], "--model: Expected a model preset name"),
        (["--task", "train=a.jsonl,allow_overlap=maybe"], "expected allow_overlap=true or false"),
    ],
)
def test_bad_settings_exit_2_in_one_line_before_any_work(argv, message, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[2])  # where README.md is a file
    with pytest.raises(SystemExit) as stop:
        parse_args(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err and "Traceback" not in err


def test_eval_episodes_minus_one_and_zero_counts_are_accepted():
    args = parse_args(["--eval-episodes", "-1", "--warm-start-tokens", "0", "--checkpoint-minutes", "0", "--kl", "0"])
    assert (args.eval_episodes, args.warm_start_tokens, args.checkpoint_minutes, args.kl) == (-1, 0, 0.0, 0.0)


def test_a_user_error_prints_one_line_and_exits_2(tmp_path, capsys):
    argv = ["--model", "tiny", "--task", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as stop:
        run_command(main, "python -m agents.train", argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert err.startswith("python -m agents.train: error: ") and "nope.jsonl" in err and err.count("\n") == 1
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):  # --debug: the traceback
        run_command(main, "python -m agents.train", [*argv, "--debug"])


def test_the_module_reports_user_errors_in_one_line(tmp_path):
    command = [sys.executable, "-m", "agents.train", "--model", "tiny", "--task", str(tmp_path / "nope.jsonl")]
    done = subprocess.run([*command, "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("python -m agents.train: error: [Errno 2] No such file or directory") and "nope.jsonl" in last
    )
    assert "Traceback" not in done.stderr


TINY = ["--model", "tiny", "--reward", "chrf", "--max-new-tokens", "4", "--n-envs", "4", "--group-size", "2"]
TINY += ["--threads", "1", "--no-progress", "--checkpoint-minutes", "0"]


def test_env_module_colon_id_trains_a_fresh_run(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--env", "text_gym:TextGen-Copy-v0", *TINY, "--steps", "8", "--eval-episodes", "2", "--out", str(out)]
    assert parse_args(argv).env == "TextGen-Copy-v0"
    results = main(argv)
    assert results["env"] == "TextGen-Copy-v0" and results["task"] == "copy"
    assert (out / "model.zip").is_file()
    first, second = capsys.readouterr().out.splitlines()[:2]  # what it says before any work
    assert first.startswith("[train] grpo on TextGen-Copy-v0 with tiny, 8 tokens") and "loading the model" in first
    assert "trains on 2000 prompts of its train split" in second
    assert "evaluates on 2 of the 200 prompts of its 'test' split" in second


def test_the_split_sizes_of_a_users_files_are_printed_at_start(tmp_path, capsys):
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text("".join(f'{{"prompt": "Say {i}", "reference": "{i}"}}\n' for i in range(5)))
    test.write_text("".join(f'{{"prompt": "Tell {i}", "reference": "{i}"}}\n' for i in range(3)))
    argv = ["--env", "TextGen-Copy-v0", "--task", f"train={train},test={test}", *TINY, "--steps", "4"]
    main([*argv, "--eval-episodes", "-1", "--warm-start-tokens", "4", "--out", str(tmp_path / "run")])
    second = capsys.readouterr().out.splitlines()[1]
    assert "trains on 5 prompts of its train split (warm start and RL)" in second
    assert "evaluates on 3 of the 3 prompts of its 'test' split" in second


def test_env_module_colon_id_imports_the_users_module(tmp_path, monkeypatch):
    (tmp_path / "my_envs_h15.py").write_text(
        "import gymnasium as gym\n"
        "gym.register('MyCopy-v0', entry_point='text_gym.envs:TextGenEnv', kwargs={'task': 'copy'})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert parse_args(["--env", "my_envs_h15:MyCopy-v0"]).env == "MyCopy-v0"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ("no_such_module_h15:TextGen-Copy-v0", "expected an importable module before ':', got 'no_such_module_h15'"),
        ("text_gym:TextGen-Nope-v0", "TextGen-Nope"),
        ("TextGen-Nope-v0", "Registered TextGen ids: ["),
    ],
)
def test_bad_env_ids_exit_2_before_any_work(env, message, capsys):
    with pytest.raises(SystemExit) as stop:
        parse_args(["--env", env])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_a_model_folder_is_stored_as_an_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "my-model").mkdir()
    monkeypatch.chdir(tmp_path)
    args = parse_args(["--model", "my-model", "--out", "runs/x"])
    assert args.model == str((tmp_path / "my-model").resolve())  # --resume finds it from any working folder
    assert parse_args(["--model", "tiny"]).model == "tiny"  # a preset stays a name
