"""The ``info`` of :class:`~text_gym.envs.TextGenEnv`: one schema on ``reset`` and on every ``step``.

Replay buffers of RL libraries (tianshou's ``Batch``, torchrl's ``TensorDict``, SB3's ``infos``
lists, Gymnasium's vector envs) lay out their storage from the first ``info`` they see and expect
every later one to match. So the env returns the same keys with values of fixed shape every time:

==============  ==========================  ====================================================
key             type                        value
==============  ==========================  ====================================================
``index``       ``np.int64``                the sample index in the task
``prompt``      ``str``                     the task prompt (not chat-templated)
``references``  ``str``                     the references as a JSON list: use
                                            :func:`references_from_info`
``text``        ``str``                     the scored reply (``reply_text()``) when ``scored``,
                                            else ``""``
``num_tokens``  ``np.int64``                the reply length so far (end-of-sequence included)
``scores``      ``dict[str, np.float64]``   each reward component and ``"reward"`` (fixed keys)
``scored``      ``np.ndarray``, ``()``,     whether ``scores`` holds the current reply's score
                dtype ``bool``
==============  ==========================  ====================================================

The references are a JSON string rather than a list because their number differs between
samples, and a ragged list is what broke the buffers. The numbers are NumPy scalars because
readers such as torchrl's ``default_info_dict_reader`` ask each value for its ``dtype``;
``scored`` is a 0-d ``bool`` array rather than an ``np.bool_`` because Gymnasium's vector envs
stack ``np.bool_`` values (not a ``np.number``) into an ``object`` array, and 0-d arrays into a
``bool`` one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

INFO_TYPES: dict[str, type] = {
    "index": np.int64,
    "prompt": str,
    "references": str,
    "text": str,
    "num_tokens": np.int64,
    "scores": dict,  # of np.float64, with fixed keys
    "scored": np.ndarray,  # 0-d, bool
}
"""The type of each value of every ``info`` that :class:`~text_gym.envs.TextGenEnv` returns (the table above)."""

INFO_KEYS: tuple[str, ...] = tuple(INFO_TYPES)
"""The keys of every ``info``, in order."""


class UnscoredReplyWarning(UserWarning):
    """Unseeded ``reset()`` calls cut short unscored replies at the same length, as an outer ``TimeLimit`` does.

    Issued once per env, under sparse rewards only, after three such cuts in a row (a library that
    resets mid-episode now and then cuts replies at varying lengths and does not trigger it). Silence it with
    ``warnings.filterwarnings("ignore", category=UnscoredReplyWarning)`` when you reset
    mid-episode on purpose (or pass a seed: a seeded reset never warns).
    """


def encode_references(references: Sequence[str]) -> str:
    """Return the references as the JSON list stored in ``info["references"]``.

    Example:
        >>> encode_references(("bonjour", "salut à toi"))
        '["bonjour", "salut à toi"]'
    """
    return json.dumps(list(references), ensure_ascii=False)


def references_from_info(info: Mapping[str, Any], row: int | None = None) -> list[str]:
    """Return the reference strings stored in an env's ``info`` (exactly, in order).

    Args:
        info: The ``info`` of a ``reset`` or ``step`` of one env, or the info of a Gymnasium vector
            env (then pass ``row``), or anything indexable by ``"references"`` that holds them, such
            as a row of a replay buffer.
        row: The sub-env of a vector env's info, whose ``info["references"]`` is an array with one
            JSON string per sub-env.

    Raises:
        KeyError: ``info`` has no ``"references"``.
        TypeError: the value is not a JSON string (for a vector env's info, pass ``row``).

    Example:
        >>> references_from_info({"references": '["hi", "hello"]'})
        ['hi', 'hello']
        >>> import numpy as np
        >>> infos = {"references": np.array(['["a"]', '["b", "c"]'], dtype=object)}  # a vector env's
        >>> references_from_info(infos, row=1)
        ['b', 'c']
    """
    value = info["references"]
    if row is not None:
        value = value[row]
    if not isinstance(value, str):
        hint = "; for a vector env's info pass row=i" if row is None else ""
        raise TypeError(
            f"Expected info['references'] to be a JSON string such as '[\"a reference\"]', got "
            f"{type(value).__name__} {value!r}{hint}."
        )
    return json.loads(value)
