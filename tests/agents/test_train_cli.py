"""`python -m agents.train`: train, checkpoint, evaluate on the held-out split, print the table."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agents.train import main, parse_args
from agents.trainers.grpo import GRPO
from text_gym.tasks import make_task

TINY = [
    "--env",
    "TextGen-Copy-v0",
    "--model",
    "tiny",
    "--reward",
    "chrf",
    "--max-new-tokens",
    "6",
    "--n-envs",
    "8",
    "--group-size",
    "4",
    "--learning-rate",
    "1e-2",
    "--eval-episodes",
    "8",
    "--no-progress",
]


@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_train_cli_writes_results_checkpoints_and_logs(tmp_path, capsys, algo):
    results = main(
        [
            *TINY,
            "--algo",
            algo,
            "--steps",
            "300",
            "--checkpoint-minutes",
            "1e-6",
            "--keep-checkpoints",
            "2",
            "--out",
            str(tmp_path),
        ]
    )
    printed = capsys.readouterr().out
    assert "| untrained greedy |" in printed and "| trained sampling |" in printed and "| copy-prompt |" in printed
    saved = json.loads((tmp_path / "results.json").read_text())
    labels = [row["agent"] for row in saved["rows"]]
    assert labels == [
        "untrained greedy",
        "untrained sampling",
        "copy-prompt",
        "reference",
        "trained greedy",
        "trained sampling",
    ]
    assert all(row["episodes"] == 8 and row["split"] == "test" for row in saved["rows"])
    copy, reference = saved["rows"][2], saved["rows"][3]
    # The copy task's source is the text to repeat: copying it is the reference, cut at the same 6-token budget.
    assert copy["bleu"] == pytest.approx(reference["bleu"]) and copy["length"] == 6
    best = max(row["bleu"] for row in saved["rows"][:3])
    assert all(row["margin"] == pytest.approx(row["bleu"] - best) for row in saved["rows"])
    assert results["history"] and (tmp_path / "model.zip").exists()
    kept = sorted((tmp_path / "checkpoints").glob(f"{algo}_*_steps.zip"))
    assert len(kept) == 2 and len(results["history"]) > 2  # one per iteration, the newest two kept
    assert (tmp_path / "progress.csv").exists() and list(tmp_path.glob("events.out.tfevents*"))


def test_train_cli_trains_on_a_jsonl_file_and_reports_its_test_split(tmp_path, capsys):
    data = tmp_path / "rewrite.jsonl"
    records = [
        {"prompt": f"Rewrite: word{i} word{i + 1}", "source": f"word{i} word{i + 1}", "reference": f"w{i}"}
        for i in range(60)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    args = [
        "--task",
        str(data),
        "--model",
        "tiny",
        "--max-new-tokens",
        "16",
        "--n-envs",
        "4",
        "--group-size",
        "2",
        "--steps",
        "40",
        "--eval-episodes",
        "-1",
        "--no-progress",
        "--warm-start-tokens",
        "30",
        "--reward",
        "bleu=1,source-bleu=-0.5",
        "--out",
        str(tmp_path / "run"),
    ]
    results = main(args)
    test_prompts = {s.prompt for s in make_task(data, "test")}
    assert results["task"] == str(data) and results["split"] == "test"
    labels = [row["agent"] for row in results["rows"]]
    assert labels == [
        "untrained greedy",
        "untrained sampling",
        "copy-prompt",
        "reference",
        "supervised greedy",
        "supervised+RL greedy",
        "supervised+RL sampling",
    ]
    assert all(row["episodes"] == len(test_prompts) for row in results["rows"])
    assert {prompt for prompt, _, _ in results["samples"]["copy-prompt"]} <= test_prompts
    copy = next(row for row in results["rows"] if row["agent"] == "copy-prompt")
    assert copy["source-bleu"] == pytest.approx(1.0) and copy["reward"] == pytest.approx(copy["bleu"] - 0.5)
    assert results["supervised_history"] and results["supervised_history"][-1]["supervised/tokens"] >= 30
    assert str(data) in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps", "0"], "expected a positive int, got 0"),
        (["--steps", "-5"], "expected a positive int"),
        (["--task", "train="], "expected NAME, PATH or split=PATH"),
        (["--reward", "bleu=x"], "name=weight pairs"),
    ],
)
def test_bad_arguments_fail_before_any_work(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_a_missing_task_file_fails_before_training(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        main(["--task", str(tmp_path / "nope.jsonl"), "--model", "tiny", "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run" / "model.zip").exists()


def test_quick_preset_fills_only_what_was_not_given():
    args = parse_args(["--quick", "--steps", "10"])
    assert args.steps == 10 and args.model == "smollm2-135m" and args.env == "TextGen-Copy-v0"


def test_module_help_runs():
    out = subprocess.run(
        [sys.executable, "-m", "agents.train", "--help"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    ).stdout
    assert "--algo" in out and "--quick" in out and "(default: 20000)" in out and "(default: the env's)" in out


ECHO = ["--env", "TextGen-EchoLetter-v0", "--model", "tiny", "--max-new-tokens", "3", "--n-envs", "4"]
ECHO += ["--group-size", "2", "--learning-rate", "1e-2", "--checkpoint-minutes", "0"]


def csv_steps(path: Path) -> list[int]:
    lines = path.read_text().splitlines()
    column = lines[0].split(",").index("time/total_timesteps")
    return [int(float(line.split(",")[column])) for line in lines[1:]]


def test_an_interrupted_run_resumes_as_itself(tmp_path, capsys, monkeypatch):
    """Ctrl-C, then the printed command: same model and env, the first rows kept, this segment's tokens."""
    out, calls = tmp_path / "run", []
    train = GRPO.train

    def train_then_ctrl_c(self, batch):  # Ctrl-C during the third update: it finishes, then the run stops
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return train(self, batch)

    monkeypatch.setattr(GRPO, "train", train_then_ctrl_c)
    first = [*ECHO, "--eval-episodes", "4", "--eval-split", "test", "--threads", "1", "--no-progress", "--seed", "3"]
    with pytest.raises(SystemExit) as info:
        main([*first, "--steps", "100000", "--out", str(out)])
    monkeypatch.undo()
    printed = capsys.readouterr().out
    assert info.value.code == 130 and "stopping at the last complete iteration" in printed
    command = shlex.split(printed.split("Resume with:\n")[1].splitlines()[0])
    assert command[:5] == ["python", "-m", "agents.train", "--resume", str(out / "interrupted.zip")]
    for flag in ("--eval-episodes 4", "--eval-split test", "--threads 1", "--no-progress", f"--out {out}"):
        assert flag in shlex.join(command)
    assert "--model" not in command and "--env" not in command and "--seed" not in command  # the checkpoint's
    saved_steps = GRPO.load(out / "interrupted.zip").num_timesteps
    first_log = csv_steps(out / "progress.csv")
    assert len(first_log) == 3 and first_log[-1] == saved_steps
    before = json.loads((out / "results.json").read_text())
    assert before["finished"] is False and [r["agent"] for r in before["before_rl"]["rows"]] == [
        "untrained greedy",
        "untrained sampling",
    ]

    steps_at = command.index("--steps") + 1
    assert command[steps_at] == str(100_000 - saved_steps)
    command[steps_at] = "24"
    results = main(command[3:])
    printed = capsys.readouterr().out
    assert results["args"]["model"] == "tiny" and results["env"] == "TextGen-EchoLetter-v0"
    assert results["args"]["seed"] == 3 and results["args"]["eval_episodes"] == 4 and results["finished"]
    total = GRPO.load(out / "model.zip").num_timesteps
    assert results["total_train_tokens"] == total and results["train_tokens"] == total - saved_steps > 0
    assert f"{total - saved_steps} tokens in" in printed and f"resumed at {saved_steps}" in printed
    labels = [row["agent"] for row in results["rows"]]
    assert labels == ["untrained greedy", "untrained sampling", "copy-prompt", "reference", "trained greedy",
                      "trained sampling"]  # fmt: skip
    assert results["rows"][0] == {**before["before_rl"]["rows"][0], "margin": results["rows"][0]["margin"]}
    assert "untrained rows: measured before the first segment" in printed
    steps = csv_steps(out / "progress.csv")
    assert steps[:3] == first_log and len(steps) > 3 and steps[-1] == total and steps == sorted(set(steps))
    assert f"Saved {out / 'model.zip'}: reload it with GRPO.load(" in printed and str(out / "results.json") in printed


def test_resume_without_comparable_untrained_rows_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    main([*ECHO, "--eval-episodes", "4", "--steps", "8", "--no-progress", "--out", str(out)])
    first = json.loads((out / "results.json").read_text())["before_rl"]
    capsys.readouterr()
    results = main(["--resume", str(out / "model.zip"), "--eval-episodes", "2", "--steps", "8", "--out", str(out)])
    assert [row["agent"] for row in results["rows"]] == [
        "copy-prompt",
        "reference",
        "trained greedy",
        "trained sampling",
    ]
    assert "margin = BLEU minus copy-prompt (no untrained rows: the first run measured them with other evaluation " \
           "settings (episodes))" in capsys.readouterr().out  # fmt: skip
    assert results["before_rl"] == first  # kept for a later resume that evaluates as the first run did
    elsewhere = main(
        ["--resume", str(out / "model.zip"), "--eval-episodes", "4", "--steps", "8", "--out", str(tmp_path / "b")]
    )
    assert elsewhere["rows"][0]["agent"] == "untrained greedy"  # found beside the checkpoint


def test_resume_takes_the_run_from_the_checkpoint_and_refuses_contradictions(tmp_path, capsys):
    saved = GRPO("tiny", "TextGen-EchoLetter-v0", env_kwargs={"tokenizer": "tiny", "max_new_tokens": 3}, n_envs=4,
                 group_size=2, seed=5, verbose=0).save(tmp_path / "run.zip")  # fmt: skip
    args = parse_args(["--resume", str(saved), "--model", "tiny", "--n-envs", "4", "--eval-episodes", "2"])
    assert (args.model, args.env, args.n_envs, args.group_size, args.seed) == ("tiny", "TextGen-EchoLetter-v0", 4, 2, 5)
    assert (args.max_new_tokens, args.task, args.reward, args.algo) == (3, None, None, "grpo")
    with pytest.raises(SystemExit) as info:
        parse_args(["--resume", str(saved), "--model", "smollm2-135m", "--algo", "ppo", "--max-new-tokens", "3"])
    error = capsys.readouterr().err
    assert info.value.code == 2
    assert "--algo 'ppo' (the checkpoint's: 'grpo'); --model 'smollm2-135m' (the checkpoint's: 'tiny')" in error
    assert "--max-new-tokens 3 (" not in error  # the saved value
    with pytest.raises(SystemExit):
        parse_args(["--resume", str(tmp_path / "nope.zip")])
    assert "--resume: Expected a trainer checkpoint at" in capsys.readouterr().err


def test_resume_keeps_beam_candidates_and_refuses_sampling_instead(tmp_path, capsys):
    saved = GRPO("tiny", "TextGen-EchoLetter-v0", env_kwargs={"tokenizer": "tiny", "max_new_tokens": 3}, n_envs=4,
                 group_size=2, seed=5, baseline="risk", candidates="beam", verbose=0).save(tmp_path / "run.zip")  # fmt: skip
    args = parse_args(["--resume", str(saved)])
    assert (args.candidates, args.baseline) == ("beam", "risk")
    with pytest.raises(SystemExit) as info:
        parse_args(["--resume", str(saved), "--candidates", "sample"])
    assert info.value.code == 2 and "--candidates 'sample' (the checkpoint's: 'beam')" in capsys.readouterr().err


ACCELERATE_SCRIPT = """
import json
import sys

import torch
from accelerate import Accelerator
from stable_baselines3.common.callbacks import BaseCallback

from agents.trainers.grpo import GRPO
from text_gym.envs.text_gen import TextGenEnv


class KeepRollouts(BaseCallback):
    def __init__(self):
        super().__init__()
        self.first_indices, self.tokens = None, 0

    def _on_step(self):
        return True

    def _on_rollout_end(self):
        batch = self.locals["batch"]
        self.first_indices = self.first_indices or list(batch.indices)
        self.tokens += int(batch.lengths.sum())


def checksum(model):
    return torch.stack([p.detach().double().sum() for p in model.policy.parameters()]).sum().item()


accelerator = Accelerator(cpu=True)
env = TextGenEnv(task="copy", tokenizer="tiny", reward="chrf", max_new_tokens=6)
model = GRPO("tiny", env, n_envs=8, group_size=4, learning_rate=1e-2, seed=0, verbose=0, accelerator=accelerator)
start, rollouts = checksum(model), KeepRollouts()
model.learn(200, callback=rollouts)
row = [start, checksum(model), model.num_timesteps, rollouts.tokens, model.iteration, *rollouts.first_indices]
rows = accelerator.gather(torch.tensor([row], dtype=torch.float64))  # (ranks, 5 + n_envs)
if accelerator.is_main_process:
    json.dump({"num_processes": accelerator.num_processes, "rows": rows.tolist()}, open(sys.argv[1], "w"))
accelerator.wait_for_everyone()
accelerator.end_training()  # destroys the process group: no rank aborts at interpreter exit
if torch.distributed.is_initialized():  # older accelerate releases leave it to us
    torch.distributed.destroy_process_group()
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_two_processes(*target: str) -> subprocess.CompletedProcess:
    """``accelerate launch`` of ``target`` in two CPU processes on a free port; returns the finished run."""
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_cpu_threads_per_process", "1", "--main_process_port", str(free_port()), *target]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(command, capture_output=True, text=True, cwd=root, timeout=300, env=env)


@pytest.mark.slow
def test_accelerate_two_cpu_processes_keep_replicas_in_sync(tmp_path):
    script, done = tmp_path / "train_ddp.py", tmp_path / "done.json"
    script.write_text(ACCELERATE_SCRIPT)
    result = launch_two_processes(str(script), str(done))
    assert result.returncode == 0, result.stderr[-3000:]
    assert done.exists() and "terminate called" not in result.stderr
    gathered = json.loads(done.read_text())
    assert gathered["num_processes"] == 2
    (start_0, end_0, steps_0, tokens_0, iterations_0, *prompts_0) = gathered["rows"][0]
    (start_1, end_1, steps_1, tokens_1, iterations_1, *prompts_1) = gathered["rows"][1]
    assert start_0 == start_1  # DDP starts every replica from rank 0's weights
    assert end_0 == end_1 != start_0  # they trained, and averaged gradients kept them equal
    assert iterations_0 == iterations_1 >= 2  # every rank stops at the same iteration (see _should_stop)
    # Each rank counts the tokens of its own rollouts; they stop once either reached the budget.
    assert (steps_0, steps_1) == (tokens_0, tokens_1) and max(steps_0, steps_1) >= 200
    # The seed is offset by the rank, so the ranks roll out other prompts: twice the data per update.
    assert prompts_0 != prompts_1, (prompts_0, prompts_1)
    assert len(set(prompts_0[:4])) == len(set(prompts_0[4:])) == 1  # yet each GRPO group shares its prompt


@pytest.mark.slow
def test_the_command_line_under_accelerate_ends_cleanly(tmp_path):
    cli = [
        "-m",
        "agents.train",
        *TINY,
        "--eval-episodes",
        "0",
        "--steps",
        "48",
        "--device",
        "cpu",
        "--out",
        str(tmp_path),
    ]
    result = launch_two_processes(*cli)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "model.zip").exists() and "terminate called" not in result.stderr


def test_trainers_are_exported_from_agents():
    import agents
    from agents.trainers.sequence_ppo import SequencePPO

    assert agents.GRPO is GRPO and agents.SequencePPO is SequencePPO
