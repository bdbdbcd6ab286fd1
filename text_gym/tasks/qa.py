"""The default task: question -> answer pairs from the English chatterbot-corpus.

The corpus (``chatterbot-corpus==1.3.3``, BSD) is a set of YAML files, one per category, whose
key ``conversations`` is a list of utterance lists. We read the files with PyYAML and never
import ``chatterbot`` itself.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from text_gym.errors import DatasetError, MissingAssetError
from text_gym.tasks.base import ALL, ListTask, Sample, check_split, normalize_text, split_of

CORPUS_PACKAGE = "chatterbot_corpus"
CORPUS_INSTALL = "pip install chatterbot-corpus==1.3.3"


@dataclass(frozen=True)
class QAStats:
    """What reading the corpus found, over all splits.

    Attributes:
        files: YAML files read.
        conversations: Conversations that were lists (the ones used).
        pairs: Valid (question, answer) pairs, before grouping identical questions.
        questions: Distinct questions after grouping; the samples of all splits together.
        skipped_conversations: Conversations that were not lists (for example a bare string).
        skipped_utterances: Utterances that were not strings or were empty after stripping.
        dropped_pairs: Adjacent pairs lost because one side was a skipped utterance.
    """

    files: int
    conversations: int
    pairs: int
    questions: int
    skipped_conversations: int
    skipped_utterances: int
    dropped_pairs: int


def corpus_dir() -> Path:
    """Return the installed ``chatterbot_corpus/data/english`` folder.

    Raises:
        MissingAssetError: If the package is not installed; the message names the pip command.
    """
    # find_spec locates the package without importing it (its __init__ is trivial anyway).
    spec = importlib.util.find_spec(CORPUS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError(f"The package {CORPUS_PACKAGE!r} is not installed; install it with `{CORPUS_INSTALL}`.")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" / "english"
    if not folder.is_dir():
        raise MissingAssetError(f"{folder} does not exist; reinstall the corpus with `{CORPUS_INSTALL}`.")
    return folder


normalize_question = normalize_text  # the grouping key of questions; kept under its old name


# Each group: (question as first seen, references in order of first appearance, category).
_Group = tuple[str, tuple[str, ...], str]


@functools.lru_cache(maxsize=4)
def read_corpus(folder: str) -> tuple[dict[str, _Group], QAStats]:
    """Read every ``*.yml`` file in ``folder`` into question groups, skipping invalid records.

    Cached, so the three splits (and every env in a process) share one read of the files.

    Returns:
        A dict from normalised question (sorted) to ``(question, references, category)``, and
        the :class:`QAStats` of the read.
    """
    paths = sorted(Path(folder).glob("*.yml"))
    if not paths:
        raise DatasetError(f"{folder} has no *.yml files; expected the chatterbot-corpus data folder.")
    questions: dict[str, str] = {}
    answers: dict[str, list[str]] = {}
    categories: dict[str, str] = {}
    counts = dict(conversations=0, pairs=0, skipped_conversations=0, skipped_utterances=0, dropped_pairs=0)
    for path in paths:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise DatasetError(f"{path}: invalid YAML ({exc}); reinstall the corpus with `{CORPUS_INSTALL}`.") from exc
        if not isinstance(data, dict) or not isinstance(data.get("conversations"), list):
            found = type(data).__name__ if not isinstance(data, dict) else f"keys {list(data)}"
            raise DatasetError(f"{path}: expected a mapping with a 'conversations' list, got {found}.")
        for conversation in data["conversations"]:
            if not isinstance(conversation, list):
                counts["skipped_conversations"] += 1
                continue
            counts["conversations"] += 1
            # None marks a skipped utterance, so a pair never bridges over it.
            turns = [u.strip() if isinstance(u, str) and u.strip() else None for u in conversation]
            counts["skipped_utterances"] += turns.count(None)
            # Every adjacent pair, as chatterbot's own ListTrainer reads a conversation: each
            # utterance answers the one before. 96% of conversations have two turns, where this is
            # the same as (0, 1), (2, 3); for longer ones it keeps every exchange.
            for question, answer in zip(turns, turns[1:], strict=False):
                if question is None or answer is None:
                    counts["dropped_pairs"] += 1
                    continue
                counts["pairs"] += 1
                key = normalize_question(question)
                if key not in questions:
                    questions[key], answers[key], categories[key] = question, [], path.stem
                if answer not in answers[key]:
                    answers[key].append(answer)
    groups = {key: (questions[key], tuple(answers[key]), categories[key]) for key in sorted(questions)}
    stats = QAStats(files=len(paths), questions=len(groups), **counts)
    return groups, stats


class QATask(ListTask):
    """Questions and answers from the English chatterbot-corpus (about 2,000 conversations in 20 categories).

    Each conversation gives every adjacent pair of utterances as (question, answer). Identical
    questions (compared stripped, with spaces collapsed and case folded) become one sample whose
    references are all their distinct answers, so a reply that matches any of them scores well.
    Each question goes to a split by :func:`~text_gym.tasks.base.split_of` of its normalised text,
    so the splits are disjoint and stable. Samples are sorted by that normalised text.

    Every record is validated: conversations that are not lists, and utterances that are not
    strings or are empty, are skipped and counted in :attr:`stats`.

    Args:
        split: One of ``"train"``, ``"validation"``, ``"test"``, or ``"all"``.
        folder: A folder of chatterbot-style ``*.yml`` files; by default the installed English corpus.

    Attributes:
        categories: The category (file stem) where each sample's question first appeared.
        stats: A :class:`QAStats` for the whole corpus (all splits).

    Raises:
        MissingAssetError: If ``chatterbot-corpus`` is not installed.
        DatasetError: If a file is not valid YAML or lacks a ``conversations`` list.
    """

    def __init__(self, split: str = "train", folder: str | os.PathLike[str] | None = None) -> None:
        check_split(split)
        groups, self.stats = read_corpus(str(folder if folder is not None else corpus_dir()))
        chosen = [group for key, group in groups.items() if split in (ALL, split_of(key))]
        super().__init__([Sample(question, refs) for question, refs, _ in chosen], name="qa")
        self.split = split
        self.categories: tuple[str, ...] = tuple(category for *_, category in chosen)

    @property
    def skipped(self) -> int:
        """Utterances and conversations skipped as invalid, over the whole corpus."""
        return self.stats.skipped_utterances + self.stats.skipped_conversations
