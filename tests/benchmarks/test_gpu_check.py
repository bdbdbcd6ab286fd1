"""The GPU check: a clear skip without CUDA, and its checks run end to end (on the CPU, with the tiny model)."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import gpu_check


def test_without_cuda_it_skips_with_exit_code_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(gpu_check.Args(out=str(tmp_path))) == gpu_check.EXIT_SKIPPED == 2
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["rows"] == [{"check": "all", "status": "skipped: no CUDA"}]
    assert "skipped: no CUDA" in capsys.readouterr().out


def test_every_check_passes_on_the_cpu_with_the_tiny_model(tmp_path):
    args = gpu_check.Args(model="tiny", device="cpu", throughput=False, out=str(tmp_path))
    rows = gpu_check.run_checks(args)
    assert [row["check"] for row in rows] == ["lmpolicy-ppo", "grpo-bf16", "save-resume", "warm-start", "evaluator"]
    assert all(row["status"] == "ok" for row in rows), [row["details"] for row in rows if row["status"] != "ok"]
    assert rows[2]["details"]["max weight difference"] == 0.0


def test_a_failing_check_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    def broken(args):
        raise RuntimeError("no kernel image is available")

    monkeypatch.setattr(gpu_check, "check_grpo_bf16", broken)
    monkeypatch.setattr(gpu_check, "check_save_resume", lambda args, folder: {"max weight difference": 0.0})
    for name in ("check_lmpolicy_ppo", "check_warm_start", "check_evaluator"):
        monkeypatch.setattr(gpu_check, name, lambda args: {})
    rows = gpu_check.run_checks(gpu_check.Args(model="tiny", device="cpu", throughput=False, out=str(tmp_path)))
    assert [row["status"] for row in rows] == ["ok", "failed", "ok", "ok", "ok"]
    assert rows[1]["details"] == "RuntimeError: no kernel image is available"


def test_device_is_checked():
    with pytest.raises(ValueError, match="expected 'cuda' or 'cpu', got 'tpu'"):
        gpu_check.Args(device="tpu")


@pytest.mark.cuda
def test_the_cuda_checks_pass(tmp_path):
    args = gpu_check.Args(model="tiny", throughput=False, out=str(tmp_path))
    assert all(row["status"] == "ok" for row in gpu_check.run_checks(args))
