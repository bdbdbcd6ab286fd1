"""What every benchmark script shares: arguments, provenance, memory, output files and SB3's PPO.

Every output file is written atomically (:mod:`agents.atomic`): a crash leaves the previous
file or the new one, never half of one. Finished runs go to an append-only JSON-lines log
(:func:`append_jsonl`), so a late failure keeps the work done before it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import re
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from agents.atomic import atomic_path, atomic_write_text
from text_gym.errors import check_positive_int

T = TypeVar("T")


def parse_args(cls: type[T], argv: Sequence[str] | None = None, description: str | None = None) -> T:
    """Build an argparse parser from a dataclass (one ``--flag`` per field, help from its docstring)."""
    parser = argparse.ArgumentParser(description=description or cls.__doc__)
    for field in dataclasses.fields(cls):
        flag = "--" + field.name.replace("_", "-")
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc]
        help_text = field.metadata.get("help", "")
        if field.type in (bool, "bool"):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif isinstance(default, (list, tuple)):
            kind = type(default[0]) if default else str
            parser.add_argument(flag, nargs="+", type=kind, default=list(default), help=help_text)
        else:
            parser.add_argument(
                flag, type=type(default) if default is not None else str, default=default, help=help_text
            )
    return cls(**vars(parser.parse_args(argv)))


def check_positive_ints(args: Any, *names: str) -> None:
    """Check that each field ``names`` of ``args`` is a positive int, for a dataclass's ``__post_init__``.

    Raises:
        ValueError: ``"<name>: expected a positive int, got <value>."`` for the first that is not
            (:func:`text_gym.errors.check_positive_int`).
    """
    for name in names:
        check_positive_int(name, getattr(args, name))


def check_positive_int_or_zero(name: str, value: object, zero: str) -> None:
    """Like :func:`text_gym.errors.check_positive_int`, but 0 is allowed too and means ``zero``.

    >>> check_positive_int_or_zero("max_new_tokens", 0, "the env's default")
    >>> check_positive_int_or_zero("max_new_tokens", -1, "the env's default")
    Traceback (most recent call last):
    ValueError: max_new_tokens: expected a positive int (or 0 for the env's default), got -1.
    """
    if not (type(value) is int and value == 0):
        check_positive_int(name, value, f"or 0 for {zero}")


def set_threads(threads: int) -> None:
    """Use ``threads`` torch CPU threads; 0 keeps torch's default.

    Raises:
        ValueError: ``threads`` is neither a positive int nor 0.
    """
    check_positive_int_or_zero("threads", threads, "torch's default")
    if threads:
        import torch

        torch.set_num_threads(threads)


def git_sha() -> str:
    """Return the current commit (with ``-dirty`` when the tree has changes), or ``"unknown"``."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict[str, Any]:
    """Describe where the benchmark ran: CPU, cores, GPU, library versions."""
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    for package in ("gymnasium", "transformers", "stable_baselines3", "sacrebleu"):
        try:
            info[package] = __import__(package).__version__
        except ImportError:
            info[package] = None
    return info


def machine_text(info: dict[str, Any]) -> str:
    """One line for a :func:`machine` dict: processor, cores and the GPU when there is one.

    >>> machine_text({"processor": "Xeon", "cpu_count": 2, "gpu": None})
    'Xeon, 2 cores'
    """
    gpu = f", {info['gpu']}" if info.get("gpu") else ""
    return f"{info.get('processor', '?')}, {info.get('cpu_count', '?')} cores{gpu}"


def provenance(args: Any) -> dict[str, Any]:
    """What every report's JSON starts with: the date (UTC), git SHA, machine and arguments of the run."""
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_sha": git_sha(),
        "machine": machine(),
        "args": dataclasses.asdict(args) if dataclasses.is_dataclass(args) else dict(vars(args)),
    }


def rss_bytes() -> int:
    """The resident set size of this process, in bytes: ``/proc/self/statm`` on Linux, else psutil.

    Torch allocates outside Python's allocator, so ``tracemalloc`` would miss most of it.
    """
    try:
        with open("/proc/self/statm") as file:  # Linux: pages; cheap enough to poll every 10 ms
            return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        pass
    try:
        import psutil
    except ImportError as error:
        raise ImportError(
            "Measuring memory outside Linux needs psutil; install it with `pip install psutil`."
        ) from error
    return int(psutil.Process().memory_info().rss)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def markdown_table(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Render rows of dicts as a GitHub markdown table (floats with 3 significant digits)."""
    columns = list(columns or rows[0].keys())

    def fmt(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_report(
    out_dir: str | Path,
    name: str,
    args: Any,
    rows: list[dict[str, Any]],
    table: str,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``<name>.json`` (rows, arguments, git SHA, machine, date, and ``extra``'s keys) and ``<name>.md``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"benchmark": name, **provenance(args)}
    record = {**meta, **(extra or {}), "rows": rows}
    atomic_write_text(out / f"{name}.json", json.dumps(record, indent=2, default=str))
    header = f"_{meta['date']} · commit {meta['git_sha']} · {machine_text(meta['machine'])}_\n\n"
    return atomic_write_text(out / f"{name}.md", header + table + "\n")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Like :func:`agents.atomic.atomic_path`, but the temporary path ends with ``path``'s suffix.

    For writers that pick the format from the file name (matplotlib's ``savefig``)::

        with atomic_output(out / "bar_bleu.png") as tmp:
            fig.savefig(tmp)  # as plots.save_figure does
    """
    with atomic_path(path) as tmp:
        named = tmp.with_name(tmp.name + Path(path).suffix)
        try:
            yield named
            os.replace(named, tmp)
        finally:
            named.unlink(missing_ok=True)


def writable_folder(path: str | os.PathLike[str]) -> Path:
    """Create the folder ``path`` if needed and check that files can be written in it.

    Raises:
        ValueError: ``path`` is a file, cannot be created, or refuses a probe file.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"Expected a writable folder, got the file {folder}; pass a folder with --out.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise ValueError(
            f"Expected a writable folder, got {folder}, which cannot be written ({error}); "
            f"pass another folder with --out."
        ) from error
    return folder


# ---------------------------------------------------------------------------------- run logs
def append_jsonl(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append ``record`` as one line of JSON to ``path`` and fsync it, so it survives a crash.

    A crash mid-write tears at most this last line: it lacks its newline, :func:`read_jsonl`
    skips it, and the next append cuts it off first. Only one process may append at a time.
    """
    line = (json.dumps(record, default=_plain) + "\n").encode("utf-8")
    with open(path, "ab+") as file:
        end = file.seek(0, os.SEEK_END)
        if end:
            file.seek(end - 1)
            if file.read(1) != b"\n":  # torn by a crash: cut back to the last complete line
                file.seek(0)
                file.truncate(file.read().rfind(b"\n") + 1)
        file.write(line)
        file.flush()
        os.fsync(file.fileno())


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a log written by :func:`append_jsonl` (none when the file is missing).

    A last line without its newline was torn by a crash during its write, and is skipped.

    Raises:
        ValueError: A complete line is not UTF-8 or not a JSON object (the file was damaged some
            other way); the message names the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        return []
    *lines, _torn = path.read_bytes().split(b"\n")
    records = []
    for number, raw in enumerate(lines, start=1):
        fix = "delete the file (or the line) to start over"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(
                f"Expected UTF-8 text in {path}, got undecodable bytes on line {number} ({error.reason} at byte "
                f"{error.start}: {raw[max(error.start - 20, 0) : error.start + 20]!r}); {fix}."
            ) from None
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"Expected one JSON record per line in {path}, got line {number}: {line[:80]!r} ({error}); {fix}."
            ) from error
        if not isinstance(record, dict):
            raise ValueError(f"Expected a JSON object on line {number} of {path}, got {line[:80]!r}; {fix}.")
        records.append(record)
    return records


def _plain(value: Any) -> Any:
    # numpy scalars (a reward's float32) and arrays: their Python equivalent.
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Expected JSON-serializable values, got {type(value).__name__}: {value!r}.")


# ---------------------------------------------------------------------------------- README sections
def check_section(path: str | os.PathLike[str], name: str) -> str:
    """Return the text of ``path`` after checking it has ``<!-- NAME:start -->`` ... ``<!-- NAME:end -->``.

    Raises:
        ValueError: The file is missing or lacks the markers (the message names them).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"Expected a file with the markers <!-- {name}:start --> and <!-- {name}:end -->, "
            f"got {str(path)!r}, which is {'a folder' if path.is_dir() else 'missing'}."
        )
    text = path.read_text()
    if not _section(name).search(text):
        raise ValueError(
            f"Expected the markers <!-- {name}:start --> and <!-- {name}:end --> in {path}, found none; "
            "add them where the section goes."
        )
    return text


def replace_section(path: str | os.PathLike[str], name: str, body: str) -> None:
    """Replace the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in ``path`` with ``body``.

    The file is rewritten atomically: a crash leaves the old README, never a truncated one.

    Raises:
        ValueError: The file is missing or lacks the markers (the message names them).
    """
    text = check_section(path, name)
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    atomic_write_text(path, _section(name).sub(lambda _: f"{start}\n{body.strip()}\n{end}", text, count=1))


def _section(name: str) -> re.Pattern[str]:
    return re.compile(re.escape(f"<!-- {name}:start -->") + ".*?" + re.escape(f"<!-- {name}:end -->"), flags=re.DOTALL)


# ---------------------------------------------------------------------------------- SB3
def sb3_ppo(
    model: str, env_id: str, n_envs: int, max_new_tokens: int, seed: int = 0, device: str = "auto", batch_size: int = 64
) -> Any:
    """Stock SB3 ``PPO`` with :class:`agents.sb3.policy.LMPolicy` on ``n_envs`` envs of ``env_id``.

    ``n_steps`` is one reply budget and there is one epoch, so each
    ``learn(n_envs * max_new_tokens)`` is one rollout and one update, in minibatches of
    ``batch_size`` steps (at most the rollout). ``model`` is also the envs' tokenizer. Close the
    envs with ``ppo.env.close()``.
    """
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from agents.sb3.policy import LMPolicy

    # render_mode=None: SB3's make_vec_env asks for "rgb_array", which a text env does not have.
    env_kwargs = {"tokenizer": model, "max_new_tokens": max_new_tokens, "render_mode": None}
    envs = make_vec_env(env_id, n_envs=n_envs, env_kwargs=env_kwargs, seed=seed)
    return PPO(
        LMPolicy,
        envs,
        n_steps=max_new_tokens,
        batch_size=min(batch_size, n_envs * max_new_tokens),
        n_epochs=1,
        learning_rate=1e-5,
        policy_kwargs={"model": model},
        verbose=0,
        seed=seed,
        device=device,
    )
