"""A corpus of hostile and damaged checkpoints, built from one tiny real one: each is refused with one CheckpointError.

A checkpoint is data, never code: a stored env id may not import a module, stored settings pass the
constructor's checks plus size bounds, members have count and size limits, and every member's
SHA-256 is checked. Every refusal names the archive and the member.
"""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from pathlib import Path

import gymnasium as gym
import pytest

from agents.train_args import parse_args
from agents.trainers.archive import CheckpointError
from agents.trainers.checkpoint import read_settings
from agents.trainers.grpo import GRPO

ECHO = {"tokenizer": "tiny", "max_new_tokens": 3}


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Path:
    """A tiny GRPO run, two iterations in, saved once."""
    trainer = GRPO("tiny", "TextGen-EchoLetter-v0", env_kwargs=ECHO, n_envs=4, group_size=2, seed=0, verbose=0)
    trainer.learn(8)
    return trainer.save(tmp_path_factory.mktemp("real") / "real.zip")


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rebuild(src: Path, dst: Path, edits: dict[str, bytes | None], *, rehash: bool = True) -> Path:
    """``src`` with members replaced (bytes) or dropped (None); ``rehash`` rewrites the manifest to match."""
    files = members(src)
    for name, data in edits.items():
        if data is None:
            files.pop(name, None)
        else:
            files[name] = data
    if rehash:
        listed = {n: {"size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for n, d in files.items()}
        listed.pop("manifest.json", None)
        files["manifest.json"] = json.dumps({"format": 1, "members": listed}).encode()
    with zipfile.ZipFile(dst, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return dst


def edit_state(src: Path, dst: Path, change) -> Path:
    state = json.loads(members(src)["trainer.json"])
    change(state)
    return rebuild(src, dst, {"trainer.json": json.dumps(state).encode()})


def test_a_stored_env_id_never_imports_a_module(real, tmp_path, monkeypatch, capsys):
    marker = tmp_path / "imported"
    (tmp_path / "somemodule.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    hostile = edit_state(real, tmp_path / "hostile.zip", lambda s: s.update(env_id="somemodule:TextGen-Copy-v0"))
    for read in (GRPO.load, read_settings):
        with pytest.raises(CheckpointError, match=r"hostile.zip: member trainer.json names the env .*module:"):
            read(hostile)
    with pytest.raises(SystemExit) as info:
        parse_args(["--resume", str(hostile)])
    assert info.value.code == 2 and "without a 'module:' part" in capsys.readouterr().err
    assert not marker.exists()


def test_a_run_on_module_env_id_is_stored_without_the_module(tmp_path):
    trainer = GRPO("tiny", "text_gym:TextGen-EchoLetter-v0", env_kwargs=ECHO, n_envs=4, group_size=2, verbose=0)
    saved = trainer.save(tmp_path / "run.zip")
    assert read_settings(saved)[0]["env_id"] == "TextGen-EchoLetter-v0" and GRPO.load(saved).env.num_envs == 4


def test_resuming_a_run_on_a_users_env_needs_their_explicit_module(tmp_path, monkeypatch, capsys):
    (tmp_path / "myenvs.py").write_text(
        "import gymnasium as gym\n"
        "gym.register('MyEcho-v0', entry_point='text_gym.envs.text_gen:TextGenEnv', kwargs={'task': 'echo-letter'})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    trainer = GRPO("tiny", "myenvs:MyEcho-v0", env_kwargs=ECHO, n_envs=4, group_size=2, verbose=0)
    saved = trainer.save(tmp_path / "run.zip")
    del gym.registry["MyEcho-v0"], sys.modules["myenvs"]  # a new process: nothing imported the module yet
    try:
        with pytest.raises(SystemExit):
            parse_args(["--resume", str(saved)])
        assert "'MyEcho-v0', which is not registered here" in capsys.readouterr().err
        args = parse_args(["--resume", str(saved), "--env", "myenvs:MyEcho-v0", "--model", "tiny"])
        assert args.env == "MyEcho-v0" and "MyEcho-v0" in gym.registry
    finally:
        gym.registry.pop("MyEcho-v0", None)
        sys.modules.pop("myenvs", None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["config"].update(n_envs=10_000_000), r"config.n_envs: expected an int in \[1, 4096\]"),
        (lambda s: s["config"].update(n_epochs=-1), r"config.n_epochs: expected an int"),
        (lambda s: s["config"].update(batch_size="8"), r"config.batch_size: expected an int"),
        (lambda s: s["config"].update(temperature=float("nan")), "holds settings its trainer refuses"),
        (lambda s: s["config"].update(learning_rate={"schedule": "os.system"}), "config.learning_rate: expected"),
        (lambda s: s["config"].update(surprise=1), r"unknown fields \['surprise'\]"),
        (lambda s: s["counters"].update(num_timesteps=-5), r"counters.num_timesteps: expected an int in \[0, "),
        (lambda s: s.update(seed=2**40), r"seed: expected an int in \[0, 4294967295\]"),
        (lambda s: s.update(seed="0"), "seed: expected an int"),
        (lambda s: s["env_kwargs"].update(max_new_tokens=0), "env_kwargs.max_new_tokens: expected an int"),
        (lambda s: s["env_kwargs"].update(task=["a", "b"]), "env_kwargs.task: expected"),
        (lambda s: s.update(env_id="Nope-v9"), "'Nope-v9', which is not registered here"),
        (lambda s: s["rng"].update(python=[3]), "rng.python: expected a list of 3"),
        (lambda s: s.update(history=[{"loss": "x"}]), r"history: expected a list of \{name: number\} rows"),
        (lambda s: s.pop("optimizer"), None),  # a weights-only checkpoint (before resume support): loads
    ],
)
def test_every_stored_setting_is_checked(real, tmp_path, change, message):
    hostile = edit_state(real, tmp_path / "hostile.zip", change)
    if message is None:
        assert GRPO.load(hostile).num_timesteps > 0
        return
    with pytest.raises(CheckpointError, match=r"hostile.zip: member trainer.json") as info:
        GRPO.load(hostile)
    assert info.match(message)


def _zip_bytes(tmp_path: Path, name: str, write) -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        write(archive)
    return path


def test_archive_limits_refuse_bombs_and_crowds_before_extracting(real, tmp_path):
    bomb = rebuild(real, tmp_path / "bomb.zip", {})
    with zipfile.ZipFile(bomb, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model/lm/zeros.bin", b"\0" * (64 << 20))  # 64 MB in about 64 KB
    assert bomb.stat().st_size < 2 << 20
    with pytest.raises(CheckpointError, match=r"bomb.zip declares \d+ bytes .* refused before extracting"):
        GRPO.load(bomb)
    crowd = _zip_bytes(tmp_path, "crowd.zip", lambda a: [a.writestr(f"m/{i}", b"") for i in range(5000)])
    with pytest.raises(CheckpointError, match="crowd.zip has 5000 members; a checkpoint has at most 4096"):
        GRPO.load(crowd)
    climb = rebuild(real, tmp_path / "climb.zip", {"../evil.json": b"{}"})
    with pytest.raises(CheckpointError, match=r"climb.zip: member name '../evil.json' leaves the archive"):
        GRPO.load(climb)


def test_every_member_is_hashed_and_checked(real, tmp_path):
    files = members(real)
    weights = "model/lm/model.safetensors"
    flipped = bytearray(files[weights])
    flipped[-1] ^= 1
    damaged = rebuild(real, tmp_path / "flipped.zip", {weights: bytes(flipped)}, rehash=False)
    with pytest.raises(CheckpointError, match=rf"flipped.zip: member {weights} does not match its SHA-256"):
        GRPO.load(damaged)
    added = rebuild(real, tmp_path / "added.zip", {"model/extra.json": b"{}"}, rehash=False)
    with pytest.raises(CheckpointError, match=r"added.zip: members \['model/extra.json'\] are not in its manifest"):
        GRPO.load(added)
    manifest = json.loads(files["manifest.json"])["members"]
    assert set(manifest) == set(files) - {"manifest.json"}


@pytest.mark.parametrize(
    ("edit", "rehash", "message"),
    [
        ({"trainer_state.safetensors": None}, True, "member trainer_state.safetensors .* is missing"),
        ({"trainer_state.safetensors": None}, False, r"members \['trainer_state.safetensors'\] of its manifest"),
        ({"model/heads.safetensors": None}, True, "member model/ does not load"),
        ({"trainer.json": b'{"class": "GRPO", "conf'}, True, "member trainer.json is not valid JSON"),
        ({"trainer_state.safetensors": b"garbage" * 10}, True, "member trainer_state.safetensors is not a safetensors"),
        ({"manifest.json": b"[1, 2"}, False, "member manifest.json is damaged"),
        ({"model/actor_critic.json": b"[]"}, True, "member model/ does not load"),
    ],
    ids=["no-state", "no-state-unlisted", "no-heads", "truncated-json", "garbage-tensors", "bad-manifest", "options"],
)
def test_a_damaged_archive_gives_one_error_naming_the_member(real, tmp_path, edit, rehash, message):
    damaged = rebuild(real, tmp_path / "damaged.zip", edit, rehash=rehash)
    with pytest.raises(CheckpointError, match=rf"damaged.zip(:| is incomplete:) .*{message}"):
        GRPO.load(damaged)


def test_a_bad_crc_names_the_member(real, tmp_path):
    raw = bytearray(real.read_bytes())
    with zipfile.ZipFile(real) as archive:
        info = archive.getinfo("trainer_state.safetensors")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)  # the member's data, stored as is
    raw[start + info.file_size // 2] ^= 0xFF
    (tmp_path / "crc.zip").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="crc.zip: member trainer_state.safetensors cannot be read .*CRC"):
        GRPO.load(tmp_path / "crc.zip")


def test_an_archive_without_a_manifest_loads_with_a_warning(real, tmp_path):
    old = rebuild(real, tmp_path / "old.zip", {"manifest.json": None}, rehash=False)
    with pytest.warns(UserWarning, match="old.zip has no manifest .* without an integrity check"):
        assert GRPO.load(old).num_timesteps > 0
