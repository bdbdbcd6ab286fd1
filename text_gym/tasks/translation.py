"""English -> French, German or Spanish translation, from the catalogues that ship in Django's wheel.

Data source: the gettext catalogues of ``django>=4.2`` (measured on Django 5.2.19), the
``django.po`` and ``djangojs.po`` files of ``django/conf/locale/<lang>/LC_MESSAGES/`` and
``django/contrib/<app>/locale/<lang>/LC_MESSAGES/`` (13 files per language). They are short UI
strings of a web framework: field labels, form errors, admin actions, month and language names.
Only the exact locale is read (``fr``, not ``fr_CA``). We locate the package with
``importlib.util.find_spec`` and never import ``django``.

Licence: BSD-3-Clause. The wheel's ``LICENSE`` reads "Copyright (c) Django Software Foundation
and individual contributors. All rights reserved." followed by the three BSD clauses, and every
catalogue header says "This file is distributed under the same license as the Django package."

Filtering rules, applied to each catalogue entry:

- Skipped: the header (empty ``msgid``), ``#, fuzzy`` entries, untranslated entries (empty
  ``msgstr``) and obsolete ``#~`` entries.
- Plural entries give ``(msgid, msgstr[0])``: in French, German and Spanish form 0 is the
  singular (French also uses it for 0), so it translates the singular ``msgid``.
- Kept only if both sides are natural text: one line (no newline, tab or carriage return),
  at most :data:`MAX_CHARS` characters, a letter outside the placeholders, no HTML markup
  (``<...>``), and no placeholder glued to letters (the ordinal suffixes ``{}th``).
- Placeholders (``%(name)s``, ``%s``, ``%d``, ``{}``) are kept, as a translator must carry them
  over (about a fifth of the samples have one), but an entry whose translation lacks one of its
  English placeholders or adds another is skipped (:func:`same_placeholders`, after
  ``msgfmt --check-format``).
- No-break spaces (U+00A0, U+202F, which French typography puts inside guillemets and before
  ``:``) become plain spaces: sacrebleu's 13a tokenizer does not split on them, so a reference
  ``«\\u00a0x\\u00a0»`` would be one token that a model typing ordinary spaces never matches.
  Both sides are stripped; quotes and apostrophes (``’``, ``«``, ``„``) are kept as written.
- ``msgctxt`` is not shown: entries with the same English under different contexts ("Change"
  the verb and the noun) become one sample whose references are all their translations.

Samples are grouped and split by :func:`~text_gym.tasks.base.split_task` (about 80/10/10 by a
hash of the prompt and source). Measured on Django 5.2.19 (other versions differ a little):

========  =====  ==========  ====  =======  ============  ==========================
language  train  validation  test  samples  with 2+ refs  pairs kept / entries
========  =====  ==========  ====  =======  ============  ==========================
fr        588    69          66    723      33            827 / 920
de        574    67          78    719      10            823 / 923 (17 untranslated)
es        598    79          60    737      55            841 / 920
========  =====  ==========  ====  =======  ============  ==========================

With SmolLM2's tokenizer and chat template a prompt takes 38 tokens (median) and at most 75, so
the default ``max_prompt_tokens=96`` fits all; about 91-93% of references fit in 24 tokens and
96-98% in 32. Replying with the English source scores a mean sentence BLEU of about 0.16-0.21
(placeholders, names and cognates match), the floor an agent should beat.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

from text_gym.errors import DatasetError, MissingAssetError
from text_gym.tasks.base import ListTask, Sample, check_split, sample_key, split_task

DJANGO_PACKAGE = "django"
DJANGO_INSTALL = "pip install django"
LANGUAGES: dict[str, str] = {"de": "German", "es": "Spanish", "fr": "French"}
"""The supported target languages: locale code -> the name used in the prompt."""
MAX_CHARS = 100
"""The longest English or translated text kept, in characters; longer entries are paragraphs of help text."""

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
_KEYWORD = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(".*")\s*$')
_PLACEHOLDER = re.compile(r"%\([^)]*\)[-#0+]*\d*(?:\.\d+)?[a-zA-Z]|%[-#0+]*\d*(?:\.\d+)?[sdifrxXeEgGc]|\{[^{}]*\}")
_MARKUP = re.compile(r"<[^<>]*>")
_GLUED = re.compile(f"(?:{_PLACEHOLDER.pattern})[^\\W\\d_]")  # "{}th": an ordinal suffix, not text
_NO_BREAK_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " "})


@dataclass(frozen=True)
class PoEntry:
    """One entry of a gettext ``.po`` catalogue.

    Attributes:
        msgid: The English text; empty for the header entry.
        msgstr: The translation (``msgstr[0]`` for a plural entry); empty when untranslated.
        msgctxt: The disambiguating context, if any.
        msgid_plural: The English plural, for a plural entry.
        flags: The ``#,`` flags, such as ``"fuzzy"`` or ``"python-format"``.
        line: The 1-based line of the entry's first keyword (``msgctxt`` or ``msgid``).
    """

    msgid: str
    msgstr: str
    msgctxt: str | None = None
    msgid_plural: str | None = None
    flags: frozenset[str] = frozenset()
    line: int = 0

    @property
    def fuzzy(self) -> bool:
        """True when a translator marked the translation as needing review."""
        return "fuzzy" in self.flags


def _unquote(quoted: str, where: str) -> str:
    if len(quoted) < 2 or not quoted.startswith('"') or not quoted.endswith('"'):
        raise DatasetError(f"{where}: expected a double-quoted string, got {quoted!r:.80}.")
    body = quoted[1:-1]
    if re.search(r'(?<!\\)(?:\\\\)*"', body):
        raise DatasetError(f"{where}: expected one double-quoted string, got {quoted!r:.80}.")
    # Unknown escapes keep their character, as msgfmt does.
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def parse_po(text: str, origin: str = "<po>") -> list[PoEntry]:
    """Parse the text of a gettext ``.po`` file into its entries, header and fuzzy ones included.

    Handles ``msgctxt``, plural entries (``msgid_plural``, ``msgstr[n]``), strings continued over
    several lines, C escapes (``\\"``, ``\\n``, ``\\t``, ``\\\\``) and ``#,`` flags. Obsolete
    ``#~`` entries and other comments are ignored.

    Args:
        text: The file's text.
        origin: The file's name, for error messages.

    Raises:
        DatasetError: A line is neither a comment, a keyword with a quoted string, nor a
            continuation string, or an entry lacks its ``msgid`` or ``msgstr``; the message gives
            ``origin`` and the line.

    Example:
        >>> po = 'msgid ""\\nmsgstr "Language: fr\\\\n"\\n\\n#, fuzzy\\nmsgctxt "month"\\nmsgid "May"\\nmsgstr ""\\n"mai"\\n'
        >>> [(e.msgctxt, e.msgid, e.msgstr, e.fuzzy) for e in parse_po(po)]
        [(None, '', 'Language: fr\\n', False), ('month', 'May', 'mai', True)]
    """
    entries: list[PoEntry] = []
    fields: dict[str, str] = {}
    flags: set[str] = set()
    start, last = 0, ""

    def flush() -> None:
        nonlocal start, last
        if fields:
            where = f"{origin}:{start}"
            if "msgid" not in fields or not any(k.startswith("msgstr") for k in fields):
                raise DatasetError(f"{where}: expected an entry with msgid and msgstr, got {sorted(fields)}.")
            msgstr = fields.get("msgstr", fields.get("msgstr[0]", ""))
            entries.append(
                PoEntry(
                    fields["msgid"], msgstr, fields.get("msgctxt"), fields.get("msgid_plural"), frozenset(flags), start
                )
            )
        fields.clear()
        flags.clear()
        start, last = 0, ""

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        where = f"{origin}:{number}"
        if not line or line.startswith("#"):
            if fields:  # a blank line or a comment ends an entry; comments belong to the next one
                flush()
            if line.startswith("#,"):
                flags.update(flag.strip() for flag in line[2:].split(",") if flag.strip())
            continue
        if line.startswith('"'):
            if not last:
                raise DatasetError(f"{where}: expected a keyword before this continuation string, got {line!r:.80}.")
            fields[last] += _unquote(line, where)
            continue
        match = _KEYWORD.match(line)
        if match is None:
            raise DatasetError(
                f"{where}: expected a comment, a keyword (msgid, msgstr, ...) or a quoted string, got {line!r:.80}."
            )
        keyword = match.group(1)
        if keyword in ("msgctxt", "msgid") and "msgid" in fields:
            flush()  # entries written without a blank line between them
        if keyword in fields:
            raise DatasetError(f"{where}: {keyword} appears twice in one entry.")
        if keyword not in ("msgctxt", "msgid") and "msgid" not in fields:
            raise DatasetError(f"{where}: expected msgid before {keyword}.")
        start = start or number
        fields[keyword], last = _unquote(match.group(3), where), keyword
    flush()
    return entries


def clean_text(text: str) -> str:
    """Return ``text`` with no-break spaces made plain and the ends stripped.

    Example:
        >>> clean_text(" Champ\\u00a0: «\\u00a0x\\u00a0» ")
        'Champ : « x »'
    """
    return text.translate(_NO_BREAK_SPACES).strip()


def placeholders(text: str) -> list[str]:
    """Return the format placeholders in ``text``, sorted (``%%`` is a literal percent sign).

    Example:
        >>> placeholders("%(count)d of %(total)s in {} (%s, 100%%)")
        ['%(count)d', '%(total)s', '%s', '{}']
    """
    return sorted(_PLACEHOLDER.findall(text.replace("%%", "")))


def same_placeholders(english: str, translation: str) -> bool:
    """Return True when ``translation`` carries the placeholders of ``english``.

    Named ones (``%(name)s``, ``{name}``) may repeat or be reordered, so they compare as sets;
    positional ones (``%s``, ``{}``) fill in order, so their counts must match.

    Example:
        >>> same_placeholders("The {name} was added. Add another {name}.", "{name} ajouté.")
        True
        >>> same_placeholders("%s of %s", "%s"), same_placeholders("%(a)s", "%(b)s")
        (False, False)
    """
    sides = [placeholders(english), placeholders(translation)]
    named = [{p for p in side if p.startswith("%(") or p[0] == "{" and p != "{}"} for side in sides]
    positional = [[p for p in side if p not in names] for side, names in zip(sides, named, strict=True)]
    return named[0] == named[1] and positional[0] == positional[1]


def is_natural(text: str) -> bool:
    """Return True when ``text`` is one line of at most :data:`MAX_CHARS` characters, with a letter and no markup.

    Example:
        >>> is_natural("Save and add another"), is_natural("%s"), is_natural("<b>Hi</b>"), is_natural("a\\nb")
        (True, False, False, False)
    """
    return (
        0 < len(text) <= MAX_CHARS
        and not any(c in text for c in "\n\r\t")
        and any(c.isalpha() for c in _PLACEHOLDER.sub("", text))
        and _MARKUP.search(text) is None
        and _GLUED.search(text) is None
    )


def usable_pair(entry: PoEntry) -> tuple[str, str] | None:
    """Return the cleaned ``(english, translation)`` of ``entry``, or None when a filtering rule skips it."""
    if not entry.msgid or entry.fuzzy or not entry.msgstr.strip():
        return None
    english, translation = clean_text(entry.msgid), clean_text(entry.msgstr)
    if not (is_natural(english) and is_natural(translation)) or not same_placeholders(english, translation):
        return None
    return english, translation


@dataclass(frozen=True)
class TranslationStats:
    """What reading one language's catalogues found, over all splits.

    Attributes:
        files: Catalogues read.
        entries: Entries other than headers.
        plural: Plural entries among them (used as their singular).
        fuzzy: Entries skipped as fuzzy.
        untranslated: Entries skipped for an empty translation.
        filtered: Entries skipped by the text rules (multi-line, too long, no letter, markup, a
            glued placeholder, placeholders that differ).
        pairs: ``(english, translation)`` pairs kept, before grouping identical English.
        sources: Distinct English texts after grouping: the samples of all splits together.
    """

    files: int
    entries: int
    plural: int
    fuzzy: int
    untranslated: int
    filtered: int
    pairs: int
    sources: int


def django_dir() -> Path:
    """Return the installed ``django`` package folder, found without importing it.

    Raises:
        MissingAssetError: If Django is not installed; the message names the pip command.
    """
    spec = importlib.util.find_spec(DJANGO_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError(
            f"The translation tasks read the catalogues of the package {DJANGO_PACKAGE!r}, which is not "
            f"installed; install it with `{DJANGO_INSTALL}` (or `pip install text_gym[translate]`)."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def catalogue_paths(folder: str | os.PathLike[str], language: str) -> list[Path]:
    """Return the ``.po`` catalogues of ``language`` in a Django package folder: core first, then contrib apps, sorted."""
    root = Path(folder)
    core = sorted((root / "conf" / "locale" / language / "LC_MESSAGES").glob("*.po"))
    return core + sorted(root.glob(f"contrib/*/locale/{language}/LC_MESSAGES/*.po"))


def _prompt(english: str, language: str) -> str:
    return f"Translate to {LANGUAGES[language]}: {english}"


@functools.lru_cache(maxsize=8)
def read_catalogues(folder: str, language: str) -> tuple[tuple[tuple[Sample, None, str], ...], TranslationStats]:
    """Read and filter every catalogue of ``language`` under ``folder``, once per process.

    Returns:
        One ``(sample, None, "file:line")`` item per kept pair, ready for
        :func:`~text_gym.tasks.base.split_task`, and the :class:`TranslationStats` of the read.
    """
    paths = catalogue_paths(folder, language)
    if not paths:
        raise DatasetError(
            f"{folder} has no {language!r} catalogues; expected conf/locale/{language}/LC_MESSAGES/*.po "
            f"in a Django package folder. Reinstall Django with `{DJANGO_INSTALL}`."
        )
    items: list[tuple[Sample, None, str]] = []
    counts = dict(entries=0, plural=0, fuzzy=0, untranslated=0, filtered=0)
    for path in paths:
        for entry in parse_po(path.read_text(encoding="utf-8-sig"), origin=str(path)):
            if not entry.msgid:
                continue  # the header
            counts["entries"] += 1
            counts["plural"] += entry.msgid_plural is not None
            if entry.fuzzy or not entry.msgstr.strip():
                counts["fuzzy" if entry.fuzzy else "untranslated"] += 1
                continue
            pair = usable_pair(entry)
            if pair is None:
                counts["filtered"] += 1
                continue
            english, translation = pair
            items.append((Sample(_prompt(english, language), (translation,), english), None, f"{path}:{entry.line}"))
    sources = len({sample_key(sample) for sample, _, _ in items})
    stats = TranslationStats(files=len(paths), pairs=len(items), sources=sources, **counts)
    return tuple(items), stats


class TranslationTask(ListTask):
    """Translate short English UI strings from Django's catalogues to French, German or Spanish.

    Each sample's prompt is ``"Translate to French: <english>"`` (German, Spanish), its source is
    the English text, and its references are every distinct translation of that English across
    Django's core and contrib catalogues. See the module docstring for the filtering rules and
    the sizes.

    Args:
        split: One of ``"train"``, ``"validation"``, ``"test"``, or ``"all"``.
        language: The target locale: ``"fr"``, ``"de"`` or ``"es"``.
        folder: A Django package folder (with ``conf/locale`` and ``contrib``); by default the
            installed one.

    Attributes:
        language: The target locale.
        stats: A :class:`TranslationStats` for the language (all splits).

    Raises:
        MissingAssetError: If Django is not installed.
        DatasetError: If the folder has no catalogues for ``language`` or one is malformed.

    Example:
        >>> task = TranslationTask("test", language="fr")
        >>> task[0].prompt == "Translate to French: " + task[0].source
        True
    """

    def __init__(
        self, split: str = "train", language: str = "fr", folder: str | os.PathLike[str] | None = None
    ) -> None:
        check_split(split)
        if language not in LANGUAGES:
            raise ValueError(f"Expected language to be one of {sorted(LANGUAGES)}, got {language!r}.")
        root = str(Path(folder) if folder is not None else django_dir())
        items, self.stats = read_catalogues(root, language)
        task = split_task(items, split, f"translate-{language}", root)
        super().__init__(list(task), name=task.name)
        self.split, self.split_sizes = split, task.split_sizes
        self.language = language


__all__ = [
    "LANGUAGES",
    "PoEntry",
    "TranslationStats",
    "TranslationTask",
    "clean_text",
    "is_natural",
    "parse_po",
    "placeholders",
    "read_catalogues",
    "same_placeholders",
    "usable_pair",
]
