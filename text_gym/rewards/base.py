"""The reward interface: a batch function ``(prompts, outputs, references) -> scores``, and composites.

A reward is any callable of the :class:`RewardFunction` shape, TRL-style: plain functions work, no
base class needed. :class:`Reward` combines named functions with weights, validates what they
return, and is itself a reward function. The name registry and ``make_reward`` live in
:mod:`text_gym.rewards`; the input checks shared by the built-in rewards live here.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from text_gym.errors import RewardError

TOTAL_KEY = "reward"
"""The key of the weighted sum in :meth:`Reward.score`; no component may use it as its name."""


@runtime_checkable
class RewardFunction(Protocol):
    """What an environment needs from a reward: one score per output, in batch form.

    Args:
        prompts: The input each output answers, one per output: the sample's ``source`` (the text
            to transform) when its task names one, else its raw prompt; never chat-templated.
        outputs: The decoded generations.
        references: The reference strings of each sample (one or more per sample).

    Returns:
        One finite float per output, as a sequence or a 1-D array.

    Example:
        >>> def brevity(prompts, outputs, references):
        ...     return [-len(out.split()) / 10 for out in outputs]
        >>> brevity(["Say hi"], ["hi there"], [["hi"]])
        [-0.2]
        >>> from text_gym.rewards import make_reward
        >>> make_reward(brevity).components
        ('brevity',)
    """

    def __call__(
        self, prompts: Sequence[str], outputs: Sequence[str], references: Sequence[Sequence[str]]
    ) -> Sequence[float] | np.ndarray: ...


class Reward:
    """A weighted sum of named reward functions; itself a :class:`RewardFunction`.

    A weight of 0 keeps a component as a logged metric without rewarding it; negative weights
    make penalties. The object holds only the functions and floats, so it pickles whenever its
    functions do (module-level functions and the built-in reward classes do; lambdas do not),
    which subprocess vector envs need.

    Args:
        functions: Component name -> reward function.
        weights: Component name -> weight, a finite real number; same keys as ``functions``.

    Example:
        >>> from text_gym.rewards import BLEU, CHRF
        >>> reward = Reward({"bleu": BLEU(), "chrf": CHRF()}, {"bleu": 1.0, "chrf": 0.5})
        >>> reward.components
        ('bleu', 'chrf')
        >>> scores = reward.score(["Say hi"], ["hello there"], [["hello there"]])
        >>> {name: round(float(values[0]), 3) for name, values in scores.items()}
        {'bleu': 1.0, 'chrf': 1.0, 'reward': 1.5}
    """

    def __init__(self, functions: Mapping[str, RewardFunction], weights: Mapping[str, float]) -> None:
        if not isinstance(functions, Mapping) or not isinstance(weights, Mapping):
            raise TypeError(
                f"Expected functions and weights to be mappings keyed by component name, got "
                f"{type(functions).__name__} and {type(weights).__name__}; e.g. Reward({{'bleu': BLEU()}}, {{'bleu': 1.0}})."
            )
        if not functions:
            raise ValueError("Expected at least one reward function, got an empty mapping.")
        if set(functions) != set(weights):
            raise ValueError(
                f"Expected one weight per reward function, got functions {sorted(functions, key=str)} "
                f"and weights {sorted(weights, key=str)}; give both mappings the same keys."
            )
        for name, function in functions.items():
            check_component_name(name)
            if not callable(function):
                raise TypeError(f"Expected reward {name!r} to be callable, got {function!r}.")
        self._functions: dict[str, RewardFunction] = dict(functions)
        self._weights: dict[str, float] = {name: check_weight(name, weights[name]) for name in functions}

    @property
    def components(self) -> tuple[str, ...]:
        """The component names, in the order they are scored and reported."""
        return tuple(self._functions)

    @property
    def weights(self) -> dict[str, float]:
        """A copy of the component weights."""
        return dict(self._weights)

    @property
    def functions(self) -> dict[str, RewardFunction]:
        """A copy of the component name -> function mapping."""
        return dict(self._functions)

    def score(
        self, prompts: Sequence[str], outputs: Sequence[str], references: Sequence[Sequence[str]]
    ) -> dict[str, np.ndarray]:
        """Score a batch with every component.

        Returns:
            Each component's ``float64`` scores of shape ``(len(outputs),)``, plus the weighted
            sum under the key ``"reward"``.

        Raises:
            ValueError: ``prompts``, ``outputs`` and ``references`` differ in length.
            RewardError: a component returned the wrong number of scores, or NaN/inf.
        """
        n = check_batch(outputs, references, prompts)
        scores: dict[str, np.ndarray] = {}
        total = np.zeros(n, dtype=np.float64)
        for name, function in self._functions.items():
            values = _check_scores(name, function(prompts, outputs, references), outputs)
            scores[name] = values
            total += self._weights[name] * values
        scores[TOTAL_KEY] = total
        return scores

    def __call__(
        self, prompts: Sequence[str], outputs: Sequence[str], references: Sequence[Sequence[str]]
    ) -> np.ndarray:
        """Return the weighted sum only, shape ``(len(outputs),)``; see :meth:`score`."""
        return self.score(prompts, outputs, references)[TOTAL_KEY]

    def __repr__(self) -> str:
        terms = ", ".join(f"{name}={weight:g}" for name, weight in self._weights.items())
        return f"Reward({terms})"


def _check_scores(name: str, values: object, outputs: Sequence[str]) -> np.ndarray:
    try:
        array = np.array(values, dtype=np.float64)  # a copy: callers may reuse their buffer
    except (TypeError, ValueError) as error:
        raise RewardError(f"Reward {name!r} returned {values!r}, expected one float per output.") from error
    if array.ndim != 1 or len(array) != len(outputs):
        got = f"an array of shape {array.shape}" if array.ndim != 1 else f"{len(array)} scores"
        raise RewardError(f"Reward {name!r} returned {got} for {len(outputs)} outputs; return one float per output.")
    if not np.isfinite(array).all():
        index = int(np.flatnonzero(~np.isfinite(array))[0])
        raise RewardError(
            f"Reward {name!r} returned {array[index]} for sample {index} (output {outputs[index]!r}); "
            "rewards must be finite, so map undefined cases to a number such as 0.0."
        )
    return array


def check_component_name(name: object) -> str:
    """Return ``name`` if it can name a reward component, else raise ``TypeError``/``ValueError``."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"Expected a reward name to be a non-empty string, got {name!r}.")
    if name == TOTAL_KEY:
        raise ValueError(
            f"The name {TOTAL_KEY!r} is reserved for the weighted sum; rename the component "
            "(for a function `def reward(...)`, rename the function or use Reward({'my_name': fn}, {'my_name': 1.0}))."
        )
    return name


def check_weight(name: str, weight: object) -> float:
    """Return ``weight`` as a float if it is a finite real number (not a bool), else raise."""
    if isinstance(weight, (bool, np.bool_)) or not isinstance(weight, numbers.Real):
        raise TypeError(
            f"Expected the weight of reward {name!r} to be a real number, got {weight!r} ({type(weight).__name__})."
        )
    if not math.isfinite(weight):
        raise ValueError(f"Expected the weight of reward {name!r} to be finite, got {weight!r}.")
    return float(weight)


def check_batch(
    outputs: Sequence[str], references: Sequence[Sequence[str]], prompts: Sequence[str] | None = None
) -> int:
    """Return the batch size, or raise ``ValueError`` if the sequences differ in length."""
    n = len(outputs)
    if len(references) != n or (prompts is not None and len(prompts) != n):
        got = f"{len(prompts)} prompts, " if prompts is not None else ""
        raise ValueError(
            f"Expected one entry per output, got {got}{n} outputs and {len(references)} reference lists; "
            "pass references as a list of lists, e.g. [['a reference'], ['another', 'or this']]."
        )
    return n


def reference_tuple(references: Sequence[str]) -> tuple[str, ...]:
    """Return one sample's references as a tuple (a cache key), checking they are strings.

    Raises:
        TypeError: ``references`` is a bare string or holds non-strings.
        ValueError: ``references`` is empty.
    """
    if isinstance(references, str):
        raise TypeError(
            f"Expected a sequence of reference strings per sample, got the string {references!r}; wrap it: [{references!r}]."
        )
    refs = tuple(references)
    if not refs:
        raise ValueError("Expected at least one reference string per sample, got an empty sequence.")
    for ref in refs:
        if not isinstance(ref, str):
            raise TypeError(f"Expected reference strings, got {ref!r} ({type(ref).__name__}) in {refs!r}.")
    return refs
