"""A causal language model with a value head: the actor-critic every agent and trainer shares.

``LMActorCritic`` wraps a transformers causal LM (a preset name, a local folder or a model object,
loaded through :mod:`agents.modeling.loading`), optionally with LoRA adapters (peft), and adds a critic:

- ``critic="shared"`` (default): a value head ``nn.Linear(hidden, 1)`` on the LM's last hidden
  state, as in TRL's ``AutoModelForCausalLMWithValueHead``. One trunk, one forward pass.
- ``critic="separate"``: a copy of the LM's trunk (the decoder without ``lm_head``), optionally cut
  to its first ``critic_layers`` layers, with its own value head. Policy and value gradients no
  longer interfere (the "separate networks" choice of Andrychowicz et al., 2021, "What Matters
  In On-Policy RL"), at the price of a second forward pass. The copy is fully trainable, also when
  the actor uses LoRA.

Token ids and masks follow the env's observation layout (left-padded prompt, right-padded reply); positions
are the attention mask's cumulative sum, so left padding and cached decoding match an unpadded sequence.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import transformers
from safetensors.torch import load_file, save_file
from torch import nn

from agents.modeling.loading import check_compatible, model_logits_size, quiet_progress
from agents.modeling.prepare import add_lora, copy_trunk, enable_checkpointing, load_lm
from agents.modeling.prepare import disable_dropout as zero_dropout
from agents.modeling.tokens import positions_from_mask
from text_gym.tokenization import load_tokenizer

CRITICS: tuple[str, ...] = ("shared", "separate")
_CONFIG_FILE = "actor_critic.json"
_HEADS_FILE = "heads.safetensors"
_OLD_HEADS_FILE = "heads.pt"


def _check_transformers(version: str = transformers.__version__) -> None:
    # The decoders take the KV cache as `cache=` since transformers 5.24; an older release would
    # accept the keyword silently and ignore it, so every "cached" step would see no past.
    major, minor = (int(part) for part in version.split(".")[:2])
    if (major, minor) < (5, 24):
        raise ImportError(
            f"agents needs transformers>=5.24 (the `cache=` argument), got {version}; "
            "run `pip install -U 'transformers>=5.24,<6'`."
        )


_check_transformers()


@dataclass
class LMOutput:
    """What :meth:`LMActorCritic.forward` returns.

    Attributes:
        logits: ``(B, T, V)`` next-token logits in float32 (``T`` shrinks to ``logits_to_keep``);
            ``None`` with ``compute_logits=False``.
        values: ``(B, T)`` state values in float32, one per position.
        cache: The updated KV cache when ``use_cache=True``: a transformers ``Cache``, or
            a pair ``(actor_cache, critic_cache)`` with a separate critic. ``None`` otherwise.
        hidden: ``(B, T, H)`` the actor's last hidden states at the same positions (the LM
            head's input, for :func:`agents.modeling.logprobs.token_logprobs`).
    """

    logits: torch.Tensor | None
    values: torch.Tensor
    cache: Any = None
    hidden: torch.Tensor | None = None


class LMActorCritic(nn.Module):
    """A causal LM policy with a value head (shared trunk) or a separate critic.

    Args:
        model: A preset name (``"smollm2-135m"``, ``"tiny"``), a local model folder, or a
            ``PreTrainedModel`` (used as is, not copied).
        tokenizer: The tokenizer, a preset or folder; by default the one of ``model`` when ``model``
            is a name or folder, else ``None``.
        lora: ``peft.LoraConfig`` keyword arguments such as ``{"r": 16}`` to train LoRA adapters
            instead of the whole LM; ``task_type`` is ``CAUSAL_LM``. ``None``: full fine-tuning.
        gradient_checkpointing: Recompute activations in the backward pass (less memory, ~30% slower).
        critic: ``"shared"`` or ``"separate"``; see the module docstring.
        critic_layers: With ``critic="separate"``, keep only the first ``critic_layers`` decoder
            layers of the critic's trunk (``None``: all).
        device: ``"auto"`` (CUDA when available), a device, or ``None``. A model object stays
            where it is under ``"auto"`` or ``None``.
        dtype: The LM's dtype; ``None`` means bfloat16 on CUDA and float32 elsewhere (a model
            object keeps its dtype). Heads are always float32.
        disable_dropout: Set every dropout probability to 0. On by default, as in TRL: dropout makes
            the probability ratio of PPO noisy even before any update.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | nn.Module = "smollm2-135m",
        *,
        tokenizer: Any = None,
        lora: dict[str, Any] | None = None,
        gradient_checkpointing: bool = False,
        critic: Literal["shared", "separate"] = "shared",
        critic_layers: int | None = None,
        device: str | torch.device | None = "auto",
        dtype: torch.dtype | str | None = None,
        disable_dropout: bool = True,
    ) -> None:
        super().__init__()
        if critic not in CRITICS:
            raise ValueError(f"critic must be one of {list(CRITICS)}, got {critic!r}.")
        if critic_layers is not None and (critic != "separate" or int(critic_layers) < 1):
            raise ValueError(
                f"critic_layers needs critic='separate' and a positive int, got {critic_layers!r} ({critic=})."
            )
        if lora is not None and not isinstance(lora, dict):
            raise TypeError(f"lora must be a dict of peft.LoraConfig arguments or None, got {type(lora).__name__}.")
        self.model_spec = str(model) if isinstance(model, (str, os.PathLike)) else None
        self.lora_config = dict(lora) if lora is not None else None
        self.critic = critic
        self.critic_layers = critic_layers
        self.gradient_checkpointing = gradient_checkpointing

        lm = load_lm(model, device, dtype)
        if disable_dropout:
            zero_dropout(lm)
        device = next(lm.parameters()).device
        if tokenizer is None and self.model_spec is not None:
            tokenizer = self.model_spec
        self.tokenizer = load_tokenizer(tokenizer) if isinstance(tokenizer, (str, os.PathLike)) else tokenizer
        self.logits_size = model_logits_size(lm)
        hidden = int(lm.config.get_text_config().hidden_size)

        # The critic's trunk is copied before LoRA wraps the LM, so it never carries adapters.
        self.critic_trunk: nn.Module | None = None
        if critic == "separate":
            self.critic_trunk = copy_trunk(lm.get_decoder(), critic_layers)
        if gradient_checkpointing:
            for module in (lm, self.critic_trunk):
                if module is not None:
                    enable_checkpointing(module)
        if lora is not None:
            lm = add_lora(lm, lora)
        self.lm = lm
        # Zero init: the first value estimates are 0 and the first updates do not fight the LM.
        self.value_head = nn.Linear(hidden, 1, device=device, dtype=torch.float32)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    # ------------------------------------------------------------------ checks
    def check_env(self, num_actions: int, tokenizer: Any = None, sequence_length: int | None = None) -> None:
        """Check, before any step, that this model can act in a TextGen env.

        Args:
            num_actions: ``n`` of the env's ``Discrete(n)`` action space.
            tokenizer: The env's tokenizer, when known (its eos must be one of the model's).
            sequence_length: ``max_prompt_tokens + max_new_tokens`` of the env, when known.

        Raises:
            ValueError: The action space is not the model's logits, the eos ids disagree, or the
                env's observations are longer than the model's context; each says what it expected.
        """
        if num_actions != self.logits_size:
            raise ValueError(
                f"The env's action space is Discrete({num_actions}) but the model outputs {self.logits_size} logits: expected "
                "the env's tokenizer to belong to the model. Use the same preset for both (e.g. tokenizer='tiny' with "
                "model='tiny')."
            )
        for known in {id(t): t for t in (tokenizer, self.tokenizer) if t is not None}.values():
            check_compatible(self.lm, known)
            if len(known) > num_actions:
                raise ValueError(
                    f"Expected a tokenizer of at most {num_actions} tokens for Discrete({num_actions}), got {len(known)}."
                )
        context = getattr(self.lm.config, "max_position_embeddings", None)
        if sequence_length is not None and isinstance(context, int) and sequence_length > context:
            raise ValueError(
                f"Expected max_prompt_tokens + max_new_tokens <= {context} (the model's context), got {sequence_length}; "
                "lower max_new_tokens or max_prompt_tokens."
            )

    # ------------------------------------------------------------------ forward
    @property
    def device(self) -> torch.device:
        """The device of the LM's parameters."""
        return next(self.lm.parameters()).device

    def trunk(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        cache: Any = None,
        position_ids: torch.Tensor | None = None,
        use_cache: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Run the trunk(s) and return ``(actor_hidden (B,T,H), critic_hidden (B,T,H), past)``.

        With a shared critic both hidden states are the same tensor. Use :meth:`heads` on the
        positions you need: computing logits only where they are used saves the ``(T, V)``
        projection (the largest matrix of a small LM).
        """
        input_ids = input_ids.long()
        attention_mask = attention_mask.long() if attention_mask.dim() == 2 else attention_mask  # 4D: packing.py's
        if position_ids is None:
            position_ids = positions_from_mask(attention_mask, input_ids.shape[1])
        actor_past, critic_past = cache if self.critic_trunk is not None and cache else (cache, None)
        kwargs = dict(attention_mask=attention_mask, position_ids=position_ids, use_cache=use_cache)
        out = self._decoder()(input_ids=input_ids, cache=actor_past, **kwargs)
        actor_hidden = out.last_hidden_state  # (B, T, H)
        if self.critic_trunk is None:
            return actor_hidden, actor_hidden, out.cache if use_cache else None
        critic_out = self.critic_trunk(input_ids=input_ids, cache=critic_past, **kwargs)
        past = (out.cache, critic_out.cache) if use_cache else None
        return actor_hidden, critic_out.last_hidden_state, past

    def heads(self, actor_hidden: torch.Tensor, critic_hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map hidden states ``(..., H)`` to float32 ``logits (..., V)`` and ``values (...)``."""
        logits = self.get_output_embeddings()(actor_hidden).float()
        with torch.autocast(critic_hidden.device.type, enabled=False):  # the float32 head stays float32 under autocast
            values = self.value_head(critic_hidden.float()).squeeze(-1)
        return logits, values

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        cache: Any = None,
        position_ids: torch.Tensor | None = None,
        use_cache: bool = False,
        logits_to_keep: int = 0,
        compute_logits: bool = True,
    ) -> LMOutput:
        """Return logits and values for every position (or the last ``logits_to_keep``).

        Args:
            input_ids: ``(B, T)`` token ids (any dtype; cast to long).
            attention_mask: ``(B, T)``, or ``(B, L + T)`` with ``L`` cached tokens.
            cache: A cache returned by an earlier call with ``use_cache=True``.
            position_ids: ``(B, T)``; by default from the cumulative sum of ``attention_mask``.
            use_cache: Return the updated cache in ``LMOutput.cache``.
            logits_to_keep: Keep only the last this many positions (0: all).
            compute_logits: ``False`` skips the LM head (``logits`` is None): callers that need
                only some positions apply it to ``LMOutput.hidden`` themselves.
        """
        actor_hidden, critic_hidden, past = self.trunk(input_ids, attention_mask, cache, position_ids, use_cache)
        if logits_to_keep:
            actor_hidden, critic_hidden = actor_hidden[:, -logits_to_keep:], critic_hidden[:, -logits_to_keep:]
        if not compute_logits:
            values = self.value_head(critic_hidden.float()).squeeze(-1)
            return LMOutput(logits=None, values=values, cache=past, hidden=actor_hidden)
        logits, values = self.heads(actor_hidden, critic_hidden)
        return LMOutput(logits=logits, values=values, cache=past, hidden=actor_hidden)

    def get_output_embeddings(self) -> nn.Module:
        """The LM head, ``(..., H)`` hidden states to ``(..., V)`` logits (named as in transformers)."""
        return self.lm.get_output_embeddings()

    def _decoder(self) -> nn.Module:
        # The LoRA layers live inside the base model's modules, so its decoder runs with them.
        base = self.lm.get_base_model() if self.lora_config is not None else self.lm
        return base.get_decoder()

    # ------------------------------------------------------------------ reference policy
    @contextlib.contextmanager
    def reference(self) -> Iterator[LMActorCritic]:
        """Within this context the LM is the reference policy: LoRA adapters are disabled.

        Only with ``lora``; without LoRA keep a frozen copy from :meth:`make_reference` instead.
        """
        if self.lora_config is None:
            raise RuntimeError("reference() needs LoRA adapters (lora={...}); without them, use make_reference().")
        with self.lm.disable_adapter():
            yield self

    def make_reference(self) -> nn.Module | None:
        """Return a frozen copy of the LM (eval mode, no gradients), or ``None`` with LoRA.

        With LoRA the reference is the base model, reached for free through :meth:`reference`.
        :meth:`reference_logits` scores with either, for callers that want whole-sequence logits::

            reference = actor_critic.make_reference()
            ref_logits = actor_critic.reference_logits(input_ids, attention_mask, reference)

        The trainers score only reply positions, branching on ``lora_config`` (``agents.trainers.reference``).
        """
        if self.lora_config is not None:
            return None
        return copy.deepcopy(self.lm).eval().requires_grad_(False)

    @torch.no_grad()
    def reference_logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, reference: nn.Module | None = None
    ) -> torch.Tensor:
        """Return the reference policy's ``(B, T, V)`` float32 logits.

        Args:
            input_ids: ``(B, T)`` token ids.
            attention_mask: ``(B, T)``.
            reference: The frozen LM from :meth:`make_reference`; ``None`` (what it returns with
                LoRA) uses :meth:`reference`.
        """
        input_ids, attention_mask = input_ids.long(), attention_mask.long()
        if reference is None:
            with self.reference():
                return self.forward(input_ids, attention_mask).logits
        positions = positions_from_mask(attention_mask)
        return reference(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions).logits.float()

    # ------------------------------------------------------------------ save / load
    @quiet_progress()
    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        """Write the LM (or only its adapters), the heads, the tokenizer and the options to ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.lm.save_pretrained(directory / "lm")
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(directory / "tokenizer")
        heads = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if not k.startswith("lm.")}
        save_file(heads, directory / _HEADS_FILE)
        config = {
            "model": self.model_spec,
            "lora": self.lora_config,
            "critic": self.critic,
            "critic_layers": self.critic_layers,
            "gradient_checkpointing": self.gradient_checkpointing,
        }
        (directory / _CONFIG_FILE).write_text(json.dumps(config, indent=2))

    @classmethod
    @quiet_progress()
    def from_pretrained(
        cls,
        directory: str | os.PathLike[str],
        model: str | os.PathLike[str] | nn.Module | None = None,
        device: str | torch.device | None = "auto",
        dtype: torch.dtype | str | None = None,
    ) -> LMActorCritic:
        """Load what :meth:`save_pretrained` wrote.

        Args:
            directory: The folder.
            model: With LoRA, the base model when it was an object (not a name or folder) at save time.
            device: As in the constructor.
            dtype: As in the constructor.
        """
        directory = Path(directory)
        config_file = directory / _CONFIG_FILE
        if not config_file.is_file():
            raise FileNotFoundError(f"Expected {config_file} (written by LMActorCritic.save_pretrained), found none.")
        config = json.loads(config_file.read_text())
        tokenizer = directory / "tokenizer" if (directory / "tokenizer").is_dir() else None
        kwargs = dict(
            tokenizer=tokenizer,
            critic=config["critic"],
            critic_layers=config["critic_layers"],
            gradient_checkpointing=config["gradient_checkpointing"],
            device=device,
            dtype=dtype,
        )
        if config["lora"] is None:
            actor_critic = cls(directory / "lm", **kwargs)
        else:
            base = model if model is not None else config["model"]
            if base is None:
                raise ValueError(
                    "These adapters were trained on a model object; pass it as from_pretrained(..., model=...)."
                )
            actor_critic = cls(base, lora=config["lora"], **kwargs)
            from peft import set_peft_model_state_dict
            from peft.utils import load_peft_weights

            set_peft_model_state_dict(
                actor_critic.lm, load_peft_weights(str(directory / "lm"), device=str(actor_critic.device))
            )
        actor_critic.model_spec = config["model"]
        if (directory / _HEADS_FILE).is_file():
            heads = load_file(directory / _HEADS_FILE, device=str(actor_critic.device))
        else:  # folders written before heads were safetensors: tensors only, never unpickled
            heads = torch.load(directory / _OLD_HEADS_FILE, map_location=actor_critic.device, weights_only=True)
        missing, unexpected = actor_critic.load_state_dict(heads, strict=False)
        if unexpected or any(not k.startswith("lm.") for k in missing):
            raise ValueError(
                f"{directory / _HEADS_FILE} does not match this critic: missing {missing}, unexpected {unexpected}."
            )
        return actor_critic


ACTOR_CRITIC_OPTIONS: tuple[str, ...] = tuple(
    name
    for name, parameter in inspect.signature(LMActorCritic).parameters.items()
    if parameter.kind is parameter.KEYWORD_ONLY
)
"""``LMActorCritic``'s keyword options, read from its signature (``LMPolicy`` and the trainers keep no list)."""
