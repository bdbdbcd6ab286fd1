"""``MaskableLMPolicy``: :class:`~agents.sb3.policy.LMPolicy` for sb3-contrib's ``MaskablePPO``.

::

    from sb3_contrib import MaskablePPO
    from agents import MaskableLMPolicy

    model = MaskablePPO(MaskableLMPolicy, env, policy_kwargs={"model": "smollm2-135m"})

``MaskablePPO`` builds its policy and then rejects any that is not a ``MaskableActorCriticPolicy``
(``ValueError: Policy must subclass MaskableActorCriticPolicy``), so plain ``LMPolicy`` does not
work there; this class is ``LMPolicy`` with that base. The env must give ``action_masks()`` (or
be wrapped in sb3-contrib's ``ActionMasker``): a boolean mask over the ``Discrete(n)`` token ids.
A ``MaskablePPO`` model saved with ``LMPolicy`` (0.1) loads with
``MaskablePPO.load(path, custom_objects={"policy_class": MaskableLMPolicy})``.

This is the only module that imports sb3-contrib, so :mod:`agents.sb3.policy` works without it.
"""

from __future__ import annotations

from typing import Any

import torch
from stable_baselines3.common.type_aliases import Schedule

try:
    from sb3_contrib.common.maskable.distributions import MaskableCategoricalDistribution, MaskableDistribution
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
except ImportError as error:
    raise ImportError(
        "MaskableLMPolicy needs sb3-contrib: pip install 'text_gym[agents]' (or pip install sb3-contrib)."
    ) from error

from agents.sb3.policy import LMPolicy

__all__ = ["MaskableLMPolicy"]


class _MaskableBase(MaskableActorCriticPolicy):
    """``MaskableActorCriticPolicy`` as the base behind ``ActorCriticPolicy`` in ``MaskableLMPolicy``'s order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # SB3's constructors do not allow this diamond without a skip: ActorCriticPolicy.__init__
        # calls super().__init__ with BasePolicy's arguments (features_extractor_class third), and
        # here that call reaches MaskableActorCriticPolicy.__init__, which takes lr_schedule third and
        # builds MLPs of its own. So the call goes on to BasePolicy, the parent ActorCriticPolicy means.
        super(MaskableActorCriticPolicy, self).__init__(*args, **kwargs)


class MaskableLMPolicy(LMPolicy, _MaskableBase):
    """:class:`~agents.sb3.policy.LMPolicy` for ``MaskablePPO``, which passes it ``action_masks``.

    Every method and argument is ``LMPolicy``'s; ``LMPolicy``'s methods come first, then
    ``ActorCriticPolicy``'s, then ``MaskableActorCriticPolicy``'s. The one difference: distributions
    are sb3-contrib's ``MaskableCategoricalDistribution``, masked with ``apply_masking`` (masked
    tokens get logit -1e8 and no share of the entropy), as for sb3-contrib's own policies.
    """

    def _build(self, lr_schedule: Schedule) -> None:
        self.action_dist = MaskableCategoricalDistribution(int(self.action_space.n))
        super()._build(lr_schedule)

    def _distribution(self, logits: torch.Tensor, action_masks: Any) -> MaskableDistribution:
        distribution = super()._distribution(logits, None)
        if action_masks is not None:
            distribution.apply_masking(action_masks)
        return distribution
