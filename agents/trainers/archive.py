"""The checkpoint archive format: a zip of files, a manifest of their SHA-256, and limits on what it may hold.

A checkpoint is someone else's file as often as it is ours, so reading one treats it as untrusted
input. Nothing here knows about trainers (:mod:`agents.trainers.checkpoint` does); this module
turns a folder into an archive and back, and refuses, before extracting anything, an archive
that could not have come from :func:`write_folder`:

- more than :data:`MAX_MEMBERS` members, or a member name that is absolute or climbs with ``..``;
- declared contents larger than :data:`MAX_EXPANSION` times the archive's own size (a zip bomb:
  :func:`write_folder` stores members uncompressed, since weights do not compress);
- a JSON member larger than :data:`MAX_JSON_BYTES`;
- a member that is not listed in ``manifest.json``, or whose SHA-256 differs from it (a flipped
  byte, a swapped file), named in the error.

Archives written before the manifest existed (0.2.0 and earlier) have no hashes: they are read
with a warning that says so, under the same limits. Every damaged archive gives one
:class:`CheckpointError` that names the archive and the member.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from agents.atomic import atomic_path, remove_stray_temporaries
from text_gym.errors import TextGymError

__all__ = [
    "MANIFEST",
    "MAX_EXPANSION",
    "MAX_JSON_BYTES",
    "MAX_MEMBERS",
    "Archive",
    "CheckpointError",
    "archive_path",
    "member_errors",
    "staging_folder",
    "write_folder",
]

MANIFEST = "manifest.json"
MAX_MEMBERS = 4096
"""A model folder has a handful of files (weights, heads, options, tokenizer); LoRA adds two."""
MAX_EXPANSION = 4
"""Declared contents may be at most this many times the archive's size (stored members: about 1)."""
MAX_JSON_BYTES = 256 * 2**20
"""trainer.json grows by one history row per iteration (about 1 KB): 256 MiB is ~250,000 iterations."""
_CHUNK = 1 << 20


class CheckpointError(TextGymError, ValueError):
    """A checkpoint that is missing a part, damaged, hostile, or does not fit what loads it; names the archive."""


def archive_path(path: str | os.PathLike[str]) -> Path:
    """The file a checkpoint path means: ``path`` itself, with ``.zip`` added only when it has no suffix.

    >>> str(archive_path("runs/model")), str(archive_path("runs/model.v1")), str(archive_path("m.zip"))
    ('runs/model.zip', 'runs/model.v1', 'm.zip')
    """
    path = Path(path)
    return path if path.suffix else path.with_suffix(".zip")


@contextlib.contextmanager
def staging_folder(target: Path) -> Iterator[Path]:
    """A temporary folder beside ``target`` for the files of its archive, removed on exit.

    Beside the target, not in the system's temporary folder: a save killed midway leaves its
    copy of the model where the next save of ``target`` (or the command line's exit) finds it and
    removes it (:func:`agents.atomic.remove_stray_temporaries`).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stray_temporaries(target.parent, target.name)
    folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_folder(target: Path, folder: Path) -> Path:
    """Zip every file under ``folder`` into ``target`` atomically, with a manifest of sizes and SHA-256."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    members = {p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": _sha256(p)} for p in files}
    manifest = {"format": 1, "members": members}
    with atomic_path(target) as part, zipfile.ZipFile(part, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(MANIFEST, json.dumps(manifest, indent=1))
        for file in files:
            archive.write(file, file.relative_to(folder).as_posix())
    return target


@contextlib.contextmanager
def member_errors(
    target: Path, member: str, what: str = "is damaged", also: tuple[type[Exception], ...] = ()
) -> Iterator[None]:
    """Turn a low-level error while reading ``member`` of ``target`` into a :class:`CheckpointError` naming both.

    ``also`` adds error types of the reader in use (``safetensors.SafetensorError``).
    """
    lowlevel = (KeyError, ValueError, TypeError, IndexError, AttributeError, RuntimeError, OSError, zipfile.BadZipFile)
    try:
        yield
    except CheckpointError:
        raise
    except lowlevel + also as error:
        detail = f"{type(error).__name__}: {error}"
        raise CheckpointError(f"{target}: member {member} {what} ({detail}).") from error


class Archive:
    """A checkpoint archive opened for reading, with its limits checked; use as a context manager.

    Raises:
        FileNotFoundError: No file at ``path``.
        CheckpointError: Not a zip archive, over a limit, or with a manifest that does not fit.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"Expected a trainer checkpoint at {self.path}, found no such file.")
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as error:
            raise CheckpointError(
                f"{self.path} is not a trainer checkpoint: expected a zip archive, got {error}."
            ) from error
        try:
            self._infos = self._check_limits()
            self.manifest = self._read_manifest()
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self._zip.close()

    @property
    def names(self) -> set[str]:
        """The member names, the manifest excluded."""
        return set(self._infos) - {MANIFEST}

    def require(self, members: tuple[str, ...]) -> None:
        """Raise :class:`CheckpointError` naming the ``members`` the archive lacks."""
        missing = [m for m in members if m not in self._infos]
        if missing:
            raise CheckpointError(
                f"{self.path} is incomplete: expected the members {list(members)}, missing {missing}."
            )

    def read_bytes(self, member: str) -> bytes:
        """One member's bytes, checked against the manifest."""
        if member not in self._infos:
            raise CheckpointError(f"{self.path} is incomplete: member {member} is missing.")
        digest = hashlib.sha256()
        with member_errors(self.path, member, "cannot be read"), self._zip.open(self._infos[member]) as file:
            data = file.read()
        digest.update(data)
        self._check_digest(member, digest.hexdigest())
        return data

    def read_json(self, member: str) -> Any:
        """One JSON member, parsed, after the size and hash checks."""
        if member in self._infos and self._infos[member].file_size > MAX_JSON_BYTES:
            size = self._infos[member].file_size
            raise CheckpointError(
                f"{self.path}: member {member} is {size} bytes, over the {MAX_JSON_BYTES}-byte limit."
            )
        data = self.read_bytes(member)
        with member_errors(self.path, member, "is not valid JSON"):
            return json.loads(data.decode("utf-8"))

    def extract(self, folder: Path) -> None:
        """Write every member under ``folder``, hashing each as it streams out."""
        for name, info in self._infos.items():
            if name == MANIFEST or info.is_dir():
                continue
            destination = folder.joinpath(*PurePosixPath(name).parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with member_errors(self.path, name, "cannot be read"):
                with self._zip.open(info) as source, open(destination, "wb") as sink:
                    while chunk := source.read(_CHUNK):
                        digest.update(chunk)
                        sink.write(chunk)
            self._check_digest(name, digest.hexdigest())

    # ------------------------------------------------------------------ checks
    def _check_limits(self) -> dict[str, zipfile.ZipInfo]:
        infos = self._zip.infolist()
        if len(infos) > MAX_MEMBERS:
            raise CheckpointError(f"{self.path} has {len(infos)} members; a checkpoint has at most {MAX_MEMBERS}.")
        declared, size = sum(i.file_size for i in infos), self.path.stat().st_size
        if declared > MAX_EXPANSION * size + _CHUNK:
            raise CheckpointError(
                f"{self.path} declares {declared} bytes of contents in a {size}-byte file (over {MAX_EXPANSION}x): "
                "refused before extracting (a checkpoint stores its members uncompressed)."
            )
        by_name: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            parts = PurePosixPath(info.filename).parts
            if info.filename.startswith("/") or "\\" in info.filename or ".." in parts or not parts:
                raise CheckpointError(f"{self.path}: member name {info.filename!r} leaves the archive's folder.")
            if info.filename in by_name:
                raise CheckpointError(f"{self.path}: member {info.filename} appears twice.")
            by_name[info.filename] = info
        return by_name

    def _read_manifest(self) -> dict[str, Any] | None:
        if MANIFEST not in self._infos:
            warnings.warn(
                f"{self.path} has no manifest (saved before checkpoints carried SHA-256 hashes): its members "
                "are read without an integrity check. Save it again to add one.",
                stacklevel=3,
            )
            return None
        if self._infos[MANIFEST].file_size > MAX_JSON_BYTES:
            raise CheckpointError(f"{self.path}: member {MANIFEST} is over the {MAX_JSON_BYTES}-byte limit.")
        with member_errors(self.path, MANIFEST, "is damaged"):
            manifest = json.loads(self._zip.read(MANIFEST).decode("utf-8"))
            members = manifest["members"]
            if not isinstance(members, dict) or not all(
                isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in members.values()
            ):
                raise ValueError("expected members: {name: {'size': int, 'sha256': str}}")
        unlisted = sorted(self.names - set(members))
        if unlisted:
            raise CheckpointError(f"{self.path}: members {unlisted} are not in its manifest (added after saving).")
        missing = sorted(set(members) - self.names)
        if missing:
            raise CheckpointError(f"{self.path} is incomplete: members {missing} of its manifest are missing.")
        return members

    def _check_digest(self, member: str, digest: str) -> None:
        if self.manifest is not None and member != MANIFEST and self.manifest[member]["sha256"] != digest:
            raise CheckpointError(
                f"{self.path}: member {member} does not match its SHA-256 in the manifest: the file is damaged "
                "or was edited after saving."
            )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
