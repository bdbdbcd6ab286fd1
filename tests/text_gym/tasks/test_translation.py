"""TranslationTask: the .po parser, the filtering rules, Django's real catalogues, splits and the env."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import text_gym
from text_gym.errors import DatasetError, MissingAssetError
from text_gym.tasks import SPLITS, make_task
from text_gym.tasks import translation as translation_module
from text_gym.tasks.base import sample_key, split_of
from text_gym.tasks.translation import (
    LANGUAGES,
    PoEntry,
    TranslationStats,
    TranslationTask,
    parse_po,
    placeholders,
    read_catalogues,
    usable_pair,
)

ROOT = Path(__file__).resolve().parents[3]

PO_TEXT = r"""# French translation of a test catalogue.
msgid ""
msgstr ""
"Project-Id-Version: test\n"
"Language: fr\n"

#: forms.py:10
#, python-format
msgid ""
"Ensure this value has at most "
"%(limit)d characters."
msgstr "Assurez-vous que cette valeur "
"comporte au plus %(limit)d caractères."

msgctxt "abbrev. month"
msgid "May"
msgstr "mai"

#, fuzzy, python-format
msgid "Say \"%s\"\tnow"
msgstr "Dites « %s »\tmaintenant"

msgid "Back\\slash\nnext line"
msgstr "Barre\\oblique\nligne suivante"
msgid "%(num)d day"
msgid_plural "%(num)d days"
msgstr[0] "%(num)d jour"
msgstr[1] "%(num)d jours"

msgid "Untranslated"
msgstr ""

#~ msgid "Obsolete"
#~ msgstr "Obsolète"
"""


def test_parse_po_reads_every_kind_of_entry():
    entries = parse_po(PO_TEXT, origin="test.po")
    assert entries == [
        PoEntry("", "Project-Id-Version: test\nLanguage: fr\n", line=2),
        PoEntry(
            "Ensure this value has at most %(limit)d characters.",
            "Assurez-vous que cette valeur comporte au plus %(limit)d caractères.",
            flags=frozenset({"python-format"}),
            line=9,
        ),
        PoEntry("May", "mai", msgctxt="abbrev. month", line=15),
        PoEntry('Say "%s"\tnow', "Dites « %s »\tmaintenant", flags=frozenset({"fuzzy", "python-format"}), line=20),
        PoEntry("Back\\slash\nnext line", "Barre\\oblique\nligne suivante", line=23),  # no blank line after it
        PoEntry("%(num)d day", "%(num)d jour", msgid_plural="%(num)d days", line=25),
        PoEntry("Untranslated", "", line=30),
    ]
    assert entries[3].fuzzy and not entries[1].fuzzy


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('msgid "a"\nmsgstr "b"\nnonsense\n', r"x\.po:3: expected a comment, a keyword"),
        ('"orphan"\n', r"x\.po:1: expected a keyword before this continuation string"),
        ('msgstr "b"\n', r"x\.po:1: expected msgid before msgstr"),
        ('msgid "a"\n\nmsgstr "b"\n', r"x\.po:1: expected an entry with msgid and msgstr"),
        ('msgid "a"\nmsgstr "b" "c"\n', r"x\.po:2: expected one double-quoted string"),
        ('msgid "a"\nmsgstr "b"\nmsgstr "c"\n', r"x\.po:3: msgstr appears twice"),
    ],
)
def test_parse_po_rejects_malformed_lines_naming_file_and_line(text, match):
    with pytest.raises(DatasetError, match=match):
        parse_po(text, origin="x.po")


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (PoEntry("Save", " Enregistrer "), ("Save", "Enregistrer")),
        (
            PoEntry("Field: %(name)s", "Champ\u00a0: «\u00a0%(name)s\u00a0»"),
            ("Field: %(name)s", "Champ : « %(name)s »"),
        ),
        (
            PoEntry("Add another {name}. {name} added.", "{name} ajouté."),
            ("Add another {name}. {name} added.", "{name} ajouté."),
        ),
        (PoEntry("", "Language: fr\n"), None),  # the header
        (PoEntry("Save", "Enregistrer", flags=frozenset({"fuzzy"})), None),
        (PoEntry("Save", "  "), None),  # untranslated
        (PoEntry("Line one\nline two", "Ligne un\nligne deux"), None),
        (PoEntry("Server Error <em>(500)</em>", "Erreur du serveur <em>(500)</em>"), None),
        (PoEntry("%(a)s %(b)s", "%(a)s %(b)s"), None),  # no letter outside the placeholders
        (PoEntry("{}th", "{}e"), None),  # an ordinal suffix
        (PoEntry("6 a.m.", "6:00"), None),  # the translation has no letter
        (PoEntry("x" * 101, "y"), None),
        (PoEntry("Delete %(name)s", "Supprimer %(objet)s"), None),  # placeholders differ
        (PoEntry("%s of %s", "%s"), None),
    ],
)
def test_usable_pair_applies_the_filtering_rules(entry, expected):
    assert usable_pair(entry) == expected


def write_catalogue(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('msgid ""\nmsgstr "Language: fr\\n"\n\n' + body, encoding="utf-8")


def test_task_groups_one_english_across_catalogues(tmp_path):
    write_catalogue(tmp_path / "conf/locale/fr/LC_MESSAGES/django.po", 'msgid "Change"\nmsgstr "Modifier"\n')
    write_catalogue(
        tmp_path / "contrib/admin/locale/fr/LC_MESSAGES/django.po",
        'msgctxt "noun"\nmsgid "Change"\nmsgstr "Modification"\n\nmsgid "Save"\nmsgstr ""\n\n'
        'msgid "Help\\ntext"\nmsgstr "Aide\\ntexte"\n',
    )
    task = TranslationTask("all", language="fr", folder=tmp_path)
    assert [tuple(s) for s in task] == [("Translate to French: Change", ("Modifier", "Modification"))]
    assert task[0].source == "Change" and task.name == "translate-fr" and task.language == "fr"
    assert task.stats == TranslationStats(
        files=2, entries=4, plural=0, fuzzy=0, untranslated=1, filtered=1, pairs=2, sources=1
    )
    assert task.split_sizes[split_of(sample_key(task[0]))] == 1
    with pytest.raises(DatasetError, match="has no 'de' catalogues"):
        TranslationTask("all", language="de", folder=tmp_path)
    with pytest.raises(ValueError, match=r"Expected language to be one of \['de', 'es', 'fr'\], got 'it'"):
        TranslationTask("all", language="it", folder=tmp_path)


def test_missing_django_names_the_install_command(monkeypatch):
    monkeypatch.setattr(translation_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingAssetError, match="pip install django"):
        TranslationTask("train")


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_real_splits_are_disjoint_covering_and_consistent(language):
    tasks = {split: make_task(f"translate-{language}", split) for split in SPLITS}
    whole = TranslationTask("all", language=language)
    keys = {split: [sample_key(s) for s in task] for split, task in tasks.items()}
    assert all(len(set(k)) == len(k) for k in keys.values())
    assert sorted(k for split in SPLITS for k in keys[split]) == sorted(sample_key(s) for s in whole)
    assert all(split_of(k) == split for split in SPLITS for k in keys[split])
    sizes = {split: len(task) for split, task in tasks.items()}
    assert sizes == whole.split_sizes and sum(sizes.values()) == len(whole) == whole.stats.sources
    assert sizes["train"] > 500 and sizes["validation"] > 40 and sizes["test"] > 40
    assert whole.stats.files >= 12 and whole.stats.pairs > 750
    for sample in whole:
        assert sample.prompt == f"Translate to {LANGUAGES[language]}: {sample.source}"
        assert sample.source == sample.source.strip() and 0 < len(sample.source) <= translation_module.MAX_CHARS
        for reference in sample.references:
            assert reference == reference.strip() and "\n" not in reference and "\u00a0" not in reference
            assert {p for p in placeholders(reference)} == {p for p in placeholders(sample.source)}
    assert any(len(s.references) > 1 for s in whole) and any(placeholders(s.source) for s in whole)


def test_real_catalogues_are_read_once_and_pickle():
    first = TranslationTask("validation", language="es")
    info = read_catalogues.cache_info()
    TranslationTask("test", language="es")
    assert read_catalogues.cache_info().hits == info.hits + 1
    clone = pickle.loads(pickle.dumps(first))
    assert list(clone) == list(first) and clone.stats == first.stats
    assert pickle.loads(pickle.dumps(make_task("translate-fr", "test"))).name == "translate-fr"


def test_splits_are_the_same_in_a_fresh_process_that_never_imports_django():
    code = (
        "import json, sys; import text_gym; from text_gym.tasks import make_task; "
        "test = [[s.prompt, list(s.references)] for s in make_task('translate-fr', 'test')]; "
        "print(json.dumps({'test': test, 'django': 'django' in sys.modules}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env={"PYTHONHASHSEED": "7"}
    )
    result = json.loads(out.stdout)
    assert result["test"] == [[s.prompt, list(s.references)] for s in make_task("translate-fr", "test")]
    assert result["django"] is False


def test_translate_env_passes_the_checker():
    assert text_gym.ENV_TASKS["TextGen-Translate-v0"] == "translate-fr"
    # The tiny test tokenizer spends a token per byte; 128 fits the longest prompt (SmolLM2 needs 75).
    env = gym.make("TextGen-Translate-v0", tokenizer="tiny", max_prompt_tokens=128, max_new_tokens=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    _, info = env.reset(seed=0)
    sample = env.unwrapped.task[info["index"]]
    assert sample.prompt.startswith("Translate to French: ") and env.unwrapped.task.split == "train"
