"""``LMPolicy``: a causal language model as an SB3 actor-critic policy.

Use it with stock Stable-Baselines3 algorithms (``MaskablePPO`` takes
:class:`~agents.sb3.maskable.MaskableLMPolicy`)::

    from stable_baselines3 import PPO
    from agents import LMPolicy

    env = gym.make("TextGen-v0")                                   # SmolLM2 tokenizer
    model = PPO(LMPolicy, env, learning_rate=1e-5, policy_kwargs={"model": "smollm2-135m"})
    model.learn(10_000)

What makes it fast:

- Rollouts: a :class:`~agents.modeling.kv_cache.RolloutKVCache` keeps a KV cache row per env and
  runs only the token appended since the last call, as ``model.generate`` does (resets and anything
  unexpected are recomputed; the cache is cleared whenever the weights may change).
- Training: ``evaluate_actions`` runs one forward pass per episode prefix in the minibatch, not per step.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from agents.modeling.kv_cache import RolloutKVCache
from agents.modeling.lm import ACTOR_CRITIC_OPTIONS, LMActorCritic
from agents.modeling.prefix import grouped_action_logprobs, grouped_last_token_outputs, last_token_outputs, left_align
from agents.modeling.prepare import autocast, autocast_dtype
from agents.sb3.cost import UpdateCost

OBS_KEYS: tuple[str, str] = ("input_ids", "attention_mask")
_Method = TypeVar("_Method", bound=Callable[..., Any])


def _autocast(method: _Method) -> _Method:
    """Run a policy method's forwards in bf16 under autocast when the policy's ``bf16`` says so (float32 weights)."""

    @functools.wraps(method)
    def run(self: LMPolicy, *args: Any, **kwargs: Any) -> Any:
        with autocast(self.device, autocast_dtype(self.device, self.bf16)):
            return method(self, *args, **kwargs)

    return run  # type: ignore[return-value]


class LMPolicy(ActorCriticPolicy):
    """An actor-critic policy whose actor is a causal LM and whose critic is a value head.

    The observation must be a ``Dict`` with ``"input_ids"`` and ``"attention_mask"`` Boxes (the
    layout of :class:`~text_gym.envs.TextGenEnv`); SB3 hands them over as floats and the policy
    casts them back to token ids. The action is the next token.

    Checks at construction (the policy sees only the spaces, not the env):

    - the observation space has that layout;
    - the action space is ``Discrete(n)`` with ``n`` the model's logits size (a mismatch means the
      env's tokenizer belongs to another model);
    - a known tokenizer (``tokenizer=``, or ``model``'s) fits the model and the action space
      (:func:`agents.modeling.loading.check_compatible`).

    How it fills ``ActorCriticPolicy``: its ``__init__`` runs as for any SB3 policy, so every
    attribute SB3 sets exists (``features_extractor``, ``net_arch``, ``action_dist``...), with
    ``net_arch=[]`` and a parameter-free features extractor; its ``_build`` hook, where SB3
    creates the MLPs and the optimizer, builds the LM instead. SB3's pipeline then reads:

    - ``features_extractor``: :class:`TokenIds` (the observation cast back to token ids);
    - ``mlp_extractor``: :class:`LastTokenLatents` (the trunk's hidden states at the last real token);
    - ``action_net``: the LM head; ``value_net``: the value head.

    The last three are views of ``actor_critic``, which holds the only parameters. The overrides
    here add the KV cache, shared prefixes, temperature and action masks; SB3's MLP and gSDE
    options are not accepted. ``MaskablePPO`` takes :class:`~agents.sb3.maskable.MaskableLMPolicy`.

    Args:
        observation_space: From the algorithm.
        action_space: From the algorithm.
        lr_schedule: From the algorithm. LMs want small rates: about 1e-5 for full fine-tuning,
            1e-4 for LoRA (SB3's 3e-4 default is far too high for a pretrained LM).
        model: Preset name, local folder or ``PreTrainedModel``; the SmolLM2-135M-Instruct preset by default.
        temperature: Logits are divided by it, for sampling and for the log-probabilities PPO
            optimizes (so the ratio is of the policy that acted).
        use_kv_cache: Reuse a per-env KV cache during rollouts (same outputs, much faster).
        group_prefixes: Share one forward pass between steps of one episode in ``evaluate_actions``.
        bf16: Run the forwards in bf16 under autocast while the weights, which the optimizer
            updates, stay float32 (the trainers' precision policy,
            :func:`agents.modeling.prepare.autocast_dtype`); None: on CUDA when the GPU supports it.
        optimizer_class: As in SB3; only trainable parameters are optimized.
        optimizer_kwargs: As in SB3; ``{"eps": 1e-5}`` for Adam by default, as in SB3.
        use_sde: Passed by SB3's on-policy algorithms; must be ``False``.
        **lm_options: The options of :class:`~agents.modeling.lm.LMActorCritic`: ``tokenizer``
            (the env's, for the checks above), ``lora``, ``gradient_checkpointing``, ``critic``,
            ``critic_layers``, ``device``, ``dtype``, ``disable_dropout``. ``dtype`` is float32
            by default (the master weights; see ``bf16``). ``device="auto"`` loads on CUDA when
            available; SB3 then moves the policy to the algorithm's ``device``: keep both the same.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        model: str | os.PathLike[str] | nn.Module = "smollm2-135m",
        temperature: float = 1.0,
        use_kv_cache: bool = True,
        group_prefixes: bool = True,
        bf16: bool | None = None,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        use_sde: bool = False,
        **lm_options: Any,
    ) -> None:
        _check_arguments(observation_space, action_space, temperature, use_sde)
        unknown = sorted(set(lm_options) - set(ACTOR_CRITIC_OPTIONS))
        if unknown:
            raise TypeError(
                f"LMPolicy got unknown options {unknown}: expected its own or LMActorCritic's {list(ACTOR_CRITIC_OPTIONS)}."
            )
        # Read by _build, which ActorCriticPolicy.__init__ calls (plain values may be set before
        # nn.Module.__init__; modules and parameters may not, and there are none here).
        self.lm_kwargs: dict[str, Any] = {"model": model, "dtype": "float32", **lm_options}
        self.bf16 = bf16
        self.temperature = float(temperature)
        self.use_kv_cache = use_kv_cache
        self.group_prefixes = group_prefixes
        self.update_cost = UpdateCost()  # warns once when the update makes several passes (agents.sb3.cost)
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=[],
            ortho_init=False,  # pretrained weights and a zero-initialized value head
            use_sde=False,
            features_extractor_class=TokenIds,
            normalize_images=False,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )

    def _build(self, lr_schedule: Schedule) -> None:
        """Build the LM actor-critic, the rollout cache and the optimizer (SB3 builds its MLPs here)."""
        self.actor_critic = LMActorCritic(**self.lm_kwargs)
        # Logits against the action space, and eos against the tokenizer the actor-critic loaded.
        self.actor_critic.check_env(int(self.action_space.n))
        self.kv_cache = RolloutKVCache()
        trainable = [p for p in self.parameters() if p.requires_grad]
        self.optimizer = self.optimizer_class(trainable, lr=lr_schedule(1), **self.optimizer_kwargs)
        # Any optimizer step makes the cached keys and values stale.
        self.optimizer.register_step_post_hook(lambda *_: self.kv_cache.clear())

    # ------------------------------------------------------------------ SB3's slots, as views
    @property
    def mlp_extractor(self) -> LastTokenLatents:
        """The trunk(s), as SB3's ``mlp_extractor``: features to last-token hidden states."""
        return LastTokenLatents(self.actor_critic)

    @property
    def action_net(self) -> nn.Module:
        """The LM head: actor hidden states ``(B, H)`` to logits ``(B, V)``."""
        return self.actor_critic.lm.get_output_embeddings()

    @property
    def value_net(self) -> nn.Module:
        """The value head: float32 critic hidden states ``(B, H)`` to values ``(B, 1)``."""
        return self.actor_critic.value_head

    def _get_action_dist_from_latent(self, latent_pi: torch.Tensor) -> Distribution:
        return self._distribution(self.action_net(latent_pi).float(), None)

    # ------------------------------------------------------------------ SB3 API
    @_autocast
    def forward(
        self, obs: PyTorchObs, deterministic: bool = False, action_masks: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``actions (B,)``, ``values (B, 1)`` and ``log_prob (B,)`` for a rollout step."""
        logits, values = self._last_token(obs, commit=True)
        distribution = self._distribution(logits, action_masks)
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        self._advance_cache(actions)
        self.update_cost.on_rollout_step(actions.shape[0])
        return actions, values[:, None], log_prob

    @_autocast
    def evaluate_actions(
        self, obs: PyTorchObs, actions: torch.Tensor, action_masks: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``values (B, 1)``, ``log_prob (B,)`` and ``entropy (B,)`` of minibatch steps, with gradients."""
        self.kv_cache.clear()
        input_ids, attention_mask = _obs_tensors(obs)
        self.update_cost.on_minibatch(input_ids.shape[0])
        if self.group_prefixes and action_masks is None:  # the LM head in chunks: no (B, V) logits kept
            values, log_prob, entropy = grouped_action_logprobs(
                self.actor_critic, input_ids, attention_mask, actions.reshape(-1), self.temperature
            )
            return values[:, None], log_prob, entropy
        if self.group_prefixes:
            logits, values = grouped_last_token_outputs(self.actor_critic, input_ids, attention_mask)
        else:
            logits, values, _, _ = last_token_outputs(self.actor_critic, input_ids, attention_mask)
        distribution = self._distribution(logits, action_masks)
        return values[:, None], distribution.log_prob(actions.reshape(-1)), distribution.entropy()

    @_autocast
    def get_distribution(self, obs: PyTorchObs, action_masks: Any = None) -> Distribution:
        """Return the next-token distribution (temperature and masks applied)."""
        logits, _ = self._last_token(obs, commit=True)
        return self._distribution(logits, action_masks)

    @_autocast
    def predict_values(self, obs: PyTorchObs) -> torch.Tensor:
        """Return ``values (B, 1)``. Uses the rollout cache without changing it (SB3 calls this on
        single terminal observations and on the last observations of a rollout)."""
        return self._last_token(obs, commit=False)[1][:, None]

    def _predict(self, observation: PyTorchObs, deterministic: bool = False, action_masks: Any = None) -> torch.Tensor:
        actions = self.get_distribution(observation, action_masks).get_actions(deterministic=deterministic)
        self._advance_cache(actions)
        return actions

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """SB3's ``predict``, with sb3-contrib's ``action_masks`` argument."""
        self.set_training_mode(False)
        obs_tensor, vectorized = self.obs_to_tensor(observation)
        with torch.no_grad():
            actions = self._predict(obs_tensor, deterministic=deterministic, action_masks=action_masks)
        actions = actions.cpu().numpy().reshape((-1, *self.action_space.shape))
        return (actions if vectorized else actions.squeeze(axis=0)), state

    def set_training_mode(self, mode: bool) -> None:
        """SB3 switches to training mode before updates, so the rollout cache is dropped then."""
        super().set_training_mode(mode)
        if mode:
            self.kv_cache.clear()
            self.update_cost.on_update_start()

    def reset_noise(self, n_envs: int = 1) -> None:
        """No-op: SB3 calls it only with ``use_sde``, which a token policy does not have."""

    # ------------------------------------------------------------------ save / load
    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """``nn.Module.state_dict``, without the frozen base weights when training LoRA adapters.

        So ``model.save(path)`` stores the adapters and heads; loading rebuilds the base model from
        ``model`` (presets and folders load the same weights every time).
        """
        state = super().state_dict(*args, **kwargs)
        if self.actor_critic.lora_config is None:
            return state
        frozen = self._frozen_keys(kwargs.get("prefix", ""))
        for key in [k for k in state if k in frozen]:
            del state[key]
        return state

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """``nn.Module.load_state_dict`` (accepting :meth:`state_dict`'s LoRA form); clears the rollout cache."""
        self.kv_cache.clear()
        if self.actor_critic.lora_config is None:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        missing = [k for k in result.missing_keys if k not in self._frozen_keys()]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(
                f"Expected the keys of {type(self).__name__}.state_dict(): missing {missing}, "
                f"unexpected {result.unexpected_keys}."
            )
        return result

    def _frozen_keys(self, prefix: str = "") -> set[str]:
        return {prefix + name for name, p in self.named_parameters() if not p.requires_grad}

    def _get_constructor_parameters(self) -> dict[str, Any]:
        # Not ActorCriticPolicy's: it adds the MLP options (net_arch, ortho_init...) that
        # LMPolicy fixes and does not take.
        return dict(
            observation_space=self.observation_space,
            action_space=self.action_space,
            lr_schedule=self._dummy_schedule,
            temperature=self.temperature,
            use_kv_cache=self.use_kv_cache,
            group_prefixes=self.group_prefixes,
            bf16=self.bf16,
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
            **self.lm_kwargs,
        )

    # ------------------------------------------------------------------ internals
    def _last_token(self, obs: PyTorchObs, commit: bool) -> tuple[torch.Tensor, torch.Tensor]:
        input_ids, attention_mask = _obs_tensors(obs)
        if self.use_kv_cache and not torch.is_grad_enabled():
            return self.kv_cache(self.actor_critic, input_ids, attention_mask, commit=commit)
        logits, values, _, _ = last_token_outputs(self.actor_critic, input_ids, attention_mask)
        return logits, values

    def _advance_cache(self, actions: torch.Tensor) -> None:
        # The env appends the chosen token, so its next observation is computed right away (see
        # RolloutKVCache.advance); this also makes SB3's terminal-value requests free.
        if self.use_kv_cache and not torch.is_grad_enabled():
            self.kv_cache.advance(self.actor_critic, actions.reshape(-1))

    def _distribution(self, logits: torch.Tensor, action_masks: Any) -> Distribution:
        if self.temperature != 1.0:
            logits = logits / self.temperature  # (B, V)
        if action_masks is not None:
            masks = torch.as_tensor(action_masks, device=logits.device).reshape(logits.shape).bool()
            logits = logits.masked_fill(~masks, torch.finfo(logits.dtype).min)
        return self.action_dist.proba_distribution(action_logits=logits)


class TokenIds(BaseFeaturesExtractor):
    """SB3's features extractor for :class:`LMPolicy`: the observation as token ids, no parameters.

    Returns ``(B, 2 * S)`` long: ``input_ids`` then ``attention_mask``.
    """

    def __init__(self, observation_space: spaces.Dict) -> None:
        _check_observation_space(observation_space)
        super().__init__(observation_space, features_dim=2 * observation_space[OBS_KEYS[0]].shape[0])

    def forward(self, observations: PyTorchObs) -> torch.Tensor:
        return torch.cat(_obs_tensors(observations), dim=1)


class LastTokenLatents:
    """SB3's ``mlp_extractor`` for :class:`LMPolicy`: :class:`TokenIds` features to hidden states.

    Gives the actor's and the critic's hidden state at each row's last real token (the inputs of
    ``action_net`` and ``value_net``), recomputed without a cache. A view of the actor-critic, not
    a module, so the policy's state dict holds its weights once.
    """

    def __init__(self, actor_critic: LMActorCritic) -> None:
        self.actor_critic = actor_critic

    @property
    def latent_dim_pi(self) -> int:
        return int(self.actor_critic.value_head.in_features)

    latent_dim_vf = latent_dim_pi

    def __call__(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``latent_pi (B, H)`` in the LM's dtype and ``latent_vf (B, H)`` in float32."""
        input_ids, attention_mask = left_align(*features.long().chunk(2, dim=1))  # (B, W)
        actor_hidden, critic_hidden, _ = self.actor_critic.trunk(input_ids, attention_mask)  # (B, W, H)
        return actor_hidden[:, -1], critic_hidden[:, -1].float()

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        return self(features)[0]

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return self(features)[1]


def _obs_tensors(obs: PyTorchObs) -> tuple[torch.Tensor, torch.Tensor]:
    """Cast SB3's float observation back to ``(B, S)`` long ``input_ids`` and ``attention_mask``."""
    if not isinstance(obs, dict):
        raise TypeError(f"LMPolicy expects a dict observation with keys {list(OBS_KEYS)}, got {type(obs).__name__}.")
    input_ids, attention_mask = (obs[key] for key in OBS_KEYS)
    # Float32 holds integers exactly up to 2**24, far above any vocabulary; round against noise.
    return input_ids.round().long(), attention_mask.round().long()


def _check_arguments(
    observation_space: spaces.Space, action_space: spaces.Space, temperature: float, use_sde: bool
) -> None:
    if use_sde:
        raise ValueError("LMPolicy has a discrete action space: expected use_sde=False, got True.")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}.")
    _check_observation_space(observation_space)
    if not isinstance(action_space, spaces.Discrete):
        raise ValueError(f"LMPolicy expects a Discrete action space over token ids, got {action_space}.")


def _check_observation_space(space: spaces.Space) -> None:
    ok = isinstance(space, spaces.Dict) and all(isinstance(space.spaces.get(k), spaces.Box) for k in OBS_KEYS)
    if not ok or space[OBS_KEYS[0]].shape != space[OBS_KEYS[1]].shape or len(space[OBS_KEYS[0]].shape) != 1:
        raise ValueError(
            f"LMPolicy expects a Dict observation space with 1-D Boxes {list(OBS_KEYS)} of equal shape "
            f"(the TextGenEnv layout), got {space}."
        )
