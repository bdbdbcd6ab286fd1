"""BLEU and chrF against known values and against sacrebleu's own functions."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import sacrebleu

from text_gym.rewards import BLEU, CHRF, corpus_bleu, sentence_bleu, sentence_chrf

CASES = [
    ("the cat sat on the mat", ["the cat sat on the mat"]),
    ("", ["hi"]),
    ("dogs bark", ["cats purr"]),
    (
        "The quick brown fox jumps over the lazy dog.",
        ["A quick brown fox jumped over a lazy dog.", "The fast brown fox jumps over the lazy dog!"],
    ),
    ("hello world", ["hello", "hello world again and again"]),
    ("a b c d e f", ["a b c", "d e f"]),
    ("Hi there,friend.", ["hi there, friend."]),
    ("the the the the", ["the cat"]),
    ("x", [""]),
]


@pytest.mark.parametrize(("output", "references"), CASES)
def test_sentence_scores_equal_sacrebleu(output, references):
    expected_bleu = min(sacrebleu.sentence_bleu(output, references).score / 100, 1.0)
    expected_chrf = min(sacrebleu.sentence_chrf(output, references).score / 100, 1.0)
    # Twice: the second call reads the cached reference statistics.
    for _ in range(2):
        assert sentence_bleu([output], [references])[0] == expected_bleu
        assert sentence_chrf([output], [references])[0] == expected_chrf


def test_known_values():
    outputs = ["the cat sat on the mat", "", "dogs bark loudly"]
    references = [["the cat sat on the mat"], ["the cat"], ["cats purr softly"]]
    np.testing.assert_array_equal(sentence_bleu(outputs, references), [1.0, 0.0, 0.0])
    chrf = sentence_chrf(outputs, references)
    assert chrf[0] == 1.0 and chrf[1] == 0.0 and 0.0 < chrf[2] < 0.5  # chrF credits shared characters
    assert sentence_bleu(outputs, references).dtype == np.float64


def test_multiple_references_take_the_best_match():
    refs = ["a completely different sentence", "the cat sat on the mat"]
    assert sentence_bleu(["the cat sat on the mat"], [refs])[0] == 1.0
    assert sentence_chrf(["the cat sat on the mat"], [refs])[0] == 1.0
    # BLEU clips each n-gram by its highest count in any one reference, across references.
    assert sentence_bleu(["a b c d e f"], [["a b c", "d e f"]])[0] == pytest.approx(
        sacrebleu.sentence_bleu("a b c d e f", ["a b c", "d e f"]).score / 100
    )


def test_corpus_bleu_ragged_references_match_sacrebleu():
    outputs = ["the cat sat on the mat", "a dog barked", "hello there friend"]
    references = [
        ["the cat sat on a mat"],
        ["the dog barked", "a dog barked loudly", "dogs bark"],
        ["hello friend", "hi there friend"],
    ]
    # sacrebleu's stream layout: streams[k][i] is reference k of sample i, None where sample i has fewer.
    streams = [
        ["the cat sat on a mat", "the dog barked", "hello friend"],
        [None, "a dog barked loudly", "hi there friend"],
        [None, "dogs bark", None],
    ]
    expected = sacrebleu.corpus_bleu(outputs, streams).score / 100
    assert corpus_bleu(outputs, references) == pytest.approx(expected, abs=1e-12)
    assert 0.0 < expected < 1.0
    assert corpus_bleu(["the cat sat on the mat"], [["the cat sat on the mat"]]) == 1.0


def test_reward_classes_ignore_prompts_and_pickle():
    for reward in (BLEU(), CHRF()):
        scores = reward(["any prompt", "another"], ["the cat", ""], [["the cat"], ["x"]])
        np.testing.assert_array_equal(scores, [1.0, 0.0])
        assert repr(pickle.loads(pickle.dumps(reward))) == repr(reward)


@pytest.mark.parametrize("function", [sentence_bleu, sentence_chrf])
def test_bad_inputs_raise_with_the_fix(function):
    with pytest.raises(ValueError, match="one entry per output"):
        function(["a", "b"], [["a"]])
    with pytest.raises(TypeError, match=r"wrap it: \['a'\]"):
        function(["a"], ["a"])  # a bare string instead of a list of references
    with pytest.raises(ValueError, match="at least one reference"):
        function(["a"], [[]])
    with pytest.raises(TypeError, match="string"):
        function([None], [["a"]])
    assert function([], []).shape == (0,)
