"""Batch reward functions: ``(prompts, outputs, references) -> one score per output``.

Any callable of that shape is a reward (see :class:`RewardFunction`); :func:`make_reward` turns a
name, a dict of weights or a callable into a :class:`Reward`, which also reports each component::

    from text_gym.rewards import make_reward

    reward = make_reward({"bleu": 1.0, "coherence": 0.5})
    scores = reward.score(["Name a string instrument."], ["The guitar."], [["A guitar.", "Violin."]])
    scores["bleu"], scores["coherence"], scores["reward"]   # arrays of shape (1,)

Built-in names: ``"bleu"`` (:class:`BLEU`), ``"chrf"`` (:class:`CHRF`), ``"coherence"``
(:class:`Coherence`), ``"sari"`` (:class:`SARI`) and ``"source-bleu"`` (:class:`SourceBLEU`); add
yours with :func:`register_reward`.

``prompts`` holds each sample's *source*: the text the reply must transform (for "Translate to
French: Save" the source is "Save"), or the raw prompt when a sample has no separate source.
SARI scores an output's edits of its source; ``"source-bleu"`` with a negative weight, as in
``make_reward({"bleu": 1.0, "source-bleu": -0.5})``, stops paying an agent for copying its input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Union

from text_gym.errors import UnknownNameError
from text_gym.rewards.base import TOTAL_KEY, Reward, RewardFunction, check_component_name, check_weight
from text_gym.rewards.bleu import BLEU, corpus_bleu, sentence_bleu
from text_gym.rewards.chrf import CHRF, sentence_chrf
from text_gym.rewards.coherence import Coherence, embed, load_encoder
from text_gym.rewards.sari import SARI, sentence_sari
from text_gym.rewards.source_bleu import SourceBLEU

RewardFactory = Callable[[], RewardFunction]
RewardSpec = Union[str, Mapping[str, float], RewardFunction, Reward]  # noqa: UP007 (a runtime alias)

REWARDS: dict[str, RewardFactory] = {
    "bleu": BLEU,
    "chrf": CHRF,
    "coherence": Coherence,
    "sari": SARI,
    "source-bleu": SourceBLEU,
}
"""Registered reward names -> factories that take no arguments; add yours with :func:`register_reward`."""


def register_reward(name: str, factory: RewardFactory, *, overwrite: bool = False) -> None:
    """Register ``factory`` (called with no arguments) under ``name`` for :func:`make_reward`.

    Args:
        name: The name used in specs such as ``"bleu"`` or ``{"bleu": 1.0}``.
        factory: A class or function returning a :class:`RewardFunction`. Have it return a
            module-level function or class instance, so environments holding the reward pickle.
        overwrite: Replace an existing registration; without it a clash raises ``ValueError``.

    Example:
        >>> def exact_match(prompts, outputs, references):
        ...     return [float(out in refs) for out, refs in zip(outputs, references)]
        >>> register_reward("exact-match", lambda: exact_match)
        >>> make_reward("exact-match")(["Say a"], ["a"], [["a"]])
        array([1.])
        >>> del REWARDS["exact-match"]
    """
    check_component_name(name)
    if not callable(factory):
        raise TypeError(f"Expected factory to be callable (e.g. a reward class), got {factory!r}.")
    if name in REWARDS and REWARDS[name] is not factory and not overwrite:
        raise ValueError(f"A reward named {name!r} is already registered; pick another name or pass overwrite=True.")
    REWARDS[name] = factory


def reward_names() -> tuple[str, ...]:
    """Return the registered reward names, sorted."""
    return tuple(sorted(REWARDS))


def _build(name: object) -> RewardFunction:
    if name not in REWARDS:
        raise UnknownNameError(
            f"Unknown reward {name!r}; expected one of {list(reward_names())}, "
            "or add yours with text_gym.rewards.register_reward(name, factory)."
        )
    return REWARDS[name]()


def _function_name(function: Callable[..., object]) -> str:
    name = getattr(function, "__name__", None)
    if not isinstance(name, str):
        name = getattr(function, "name", None)  # the built-in reward classes: "bleu", not "BLEU"
    return check_component_name(name if isinstance(name, str) else type(function).__name__)


def make_reward(spec: RewardSpec) -> Reward:
    """Build a :class:`Reward` from a name, a dict of weights, a callable, or return a ``Reward`` as is.

    Args:
        spec: A registered name (``"bleu"``, ``"chrf"``, ``"coherence"``, see :func:`reward_names`),
            a mapping of names to weights (``{"bleu": 1.0, "coherence": 0.5}``), any
            :class:`RewardFunction` (its component is named after its ``__name__``, its ``name``
            attribute or its class), or a :class:`Reward`.

    Raises:
        UnknownNameError: a name that is not registered; the message lists the registered ones.
        TypeError: a spec of another type, or a weight that is not a real number.
        ValueError: an empty mapping, or a weight that is not finite.

    Example:
        >>> make_reward("bleu")
        Reward(bleu=1)
        >>> make_reward({"bleu": 1.0, "chrf": 0.5}).components
        ('bleu', 'chrf')
    """
    if isinstance(spec, Reward):
        return spec
    if isinstance(spec, str):
        return Reward({spec: _build(spec)}, {spec: 1.0})
    if isinstance(spec, Mapping):
        if not spec:
            raise ValueError('Expected a non-empty mapping of reward names to weights, e.g. {"bleu": 1.0}, got {}.')
        weights = {name: check_weight(name, weight) for name, weight in spec.items()}
        return Reward({name: _build(name) for name in weights}, weights)
    if isinstance(spec, type):
        raise TypeError(
            f"Expected a reward function, got the class {spec.__name__}; pass an instance, e.g. {spec.__name__}()."
        )
    if callable(spec):
        name = _function_name(spec)
        return Reward({name: spec}, {name: 1.0})
    raise TypeError(
        f"Expected a reward name, a mapping of names to weights, a callable or a Reward, got {spec!r} "
        f"({type(spec).__name__}); known names are {list(reward_names())}."
    )


def reward_spec(reward: RewardSpec) -> str | dict[str, float] | None:
    """Return a name or a dict of weights that :func:`make_reward` rebuilds ``reward`` from, or None.

    Checkpoints store rewards this way: a reward made only of registered parts (by name, or as
    instances of registered classes) round-trips through JSON; a custom function does not.

    Example:
        >>> reward_spec(make_reward({"bleu": 1.0, "source-bleu": -0.5}))
        {'bleu': 1.0, 'source-bleu': -0.5}
        >>> reward_spec(BLEU()), reward_spec(lambda p, o, r: [0.0] * len(o))
        ('bleu', None)
    """
    if isinstance(reward, str):
        return reward if reward in REWARDS else None
    if isinstance(reward, Mapping) and not isinstance(reward, Reward):
        return {str(k): float(v) for k, v in reward.items()} if all(k in REWARDS for k in reward) else None
    if isinstance(reward, Reward):
        parts = reward.functions
        if all(
            name in REWARDS and isinstance(REWARDS[name], type) and type(fn) is REWARDS[name]
            for name, fn in parts.items()
        ):
            return reward.weights
        return None
    name = next((n for n, factory in REWARDS.items() if isinstance(factory, type) and type(reward) is factory), None)
    return name


__all__ = [
    "BLEU",
    "CHRF",
    "REWARDS",
    "SARI",
    "TOTAL_KEY",
    "Coherence",
    "Reward",
    "RewardFactory",
    "RewardFunction",
    "RewardSpec",
    "SourceBLEU",
    "corpus_bleu",
    "embed",
    "load_encoder",
    "make_reward",
    "register_reward",
    "reward_spec",
    "reward_names",
    "sentence_bleu",
    "sentence_chrf",
    "sentence_sari",
]
