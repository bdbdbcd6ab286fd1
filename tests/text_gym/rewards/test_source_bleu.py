"""SourceBLEU: BLEU against the source, and its use as a copying penalty."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import sacrebleu

from text_gym.rewards import REWARDS, SourceBLEU, make_reward, reward_names, sentence_bleu

SOURCE = "Save the file"
REFERENCE = "Enregistrer le fichier"  # shares no word with the source


def test_copy_scores_one_and_disjoint_scores_zero():
    scores = SourceBLEU()([SOURCE, SOURCE, SOURCE], [SOURCE, REFERENCE, ""], [[REFERENCE]] * 3)
    np.testing.assert_array_equal(scores, [1.0, 0.0, 0.0])
    assert scores.dtype == np.float64 and scores.shape == (3,)


def test_equals_sentence_bleu_with_the_source_as_the_reference():
    prompts = ["Save the file", "The cat sat on the mat.", ""]
    outputs = ["Save the file now", "the cat sat", "anything"]
    scores = SourceBLEU()(prompts, outputs, [["unused"]] * 3)
    np.testing.assert_array_equal(scores, sentence_bleu(outputs, [[p] for p in prompts]))
    expected = [min(sacrebleu.sentence_bleu(out, [src]).score / 100, 1.0) for src, out in zip(prompts, outputs)]
    np.testing.assert_array_equal(scores, expected)
    assert 0.0 < scores[0] < 1.0 and 0.0 < scores[1] < 1.0 and scores[2] == 0.0


def test_references_are_ignored():
    a = SourceBLEU()([SOURCE], ["Save the file now"], [["x"]])
    b = SourceBLEU()([SOURCE], ["Save the file now"], [["Save the file now", "y"]])
    np.testing.assert_array_equal(a, b)


def test_negative_weight_stops_paying_for_copying():
    reward = make_reward({"bleu": 1.0, "source-bleu": -0.5})
    prompts = [SOURCE, SOURCE, SOURCE]
    outputs = [SOURCE, REFERENCE, SOURCE]
    references = [[REFERENCE], [REFERENCE], [SOURCE]]
    scores = reward.score(prompts, outputs, references)
    # Copying a source the reference does not share: BLEU 0, source BLEU 1 -> 0 - 0.5.
    # The reference, disjoint from the source: 1 - 0. Copying when the copy is right: 1 - 0.5.
    np.testing.assert_array_equal(scores["bleu"], [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(scores["source-bleu"], [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(scores["reward"], [-0.5, 1.0, 0.5])


def test_registered_as_source_bleu_and_pickles():
    assert "source-bleu" in reward_names() and REWARDS["source-bleu"] is SourceBLEU
    assert make_reward("source-bleu").components == ("source-bleu",)
    assert make_reward(SourceBLEU()).components == ("source-bleu",)
    assert repr(pickle.loads(pickle.dumps(SourceBLEU()))) == "SourceBLEU()"
    reward = pickle.loads(pickle.dumps(make_reward({"bleu": 1.0, "source-bleu": -0.5})))
    np.testing.assert_array_equal(reward([SOURCE], [SOURCE], [[REFERENCE]]), [-0.5])


def test_bad_inputs_raise_with_the_fix():
    with pytest.raises(ValueError, match="one entry per output"):
        SourceBLEU()(["a"], ["a", "b"], [["a"], ["b"]])
    with pytest.raises(TypeError, match="prompt \\(source\\) to be a string"):
        SourceBLEU()([None], ["a"], [["a"]])
    with pytest.raises(TypeError, match="string"):
        SourceBLEU()(["a"], [None], [["a"]])
    assert SourceBLEU()([], [], []).shape == (0,)
