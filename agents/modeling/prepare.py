"""Preparing a language model to be trained as a policy: device and dtype, LoRA, a critic trunk, dropout, checkpointing."""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from typing import Any

import torch
from torch import nn

from agents.modeling.loading import load_model, resolve_device

__all__ = [
    "adamw",
    "add_lora",
    "autocast",
    "autocast_dtype",
    "copy_trunk",
    "disable_dropout",
    "enable_checkpointing",
    "load_lm",
    "to_dtype",
]


def load_lm(model: str | os.PathLike[str] | nn.Module, device: Any, dtype: Any) -> nn.Module:
    """The causal LM an actor-critic wraps: a model object as given (moved if asked), or a preset/folder loaded in bf16 on CUDA, fp32 on CPU."""
    if isinstance(model, nn.Module):
        if not hasattr(model, "get_output_embeddings"):
            raise TypeError(f"model must be a transformers causal LM, got {type(model).__name__}.")
        if device not in (None, "auto") or dtype is not None:
            model = model.to(device=None if device in (None, "auto") else device, dtype=to_dtype(dtype))
        return model
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a preset name, a folder or a PreTrainedModel, got {type(model).__name__}.")
    device = torch.device(resolve_device("auto" if device is None else device))
    dtype = to_dtype(dtype) or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    return load_model(model, device=device, dtype=dtype)


def autocast_dtype(device: torch.device, bf16: bool | None = None) -> torch.dtype | None:
    """The precision policy of every trainer and of ``LMPolicy``: the dtype forwards autocast to.

    Weights stay float32 (the optimizer's master copy, which Adam's small updates need); on CUDA
    the forwards run in bf16 under autocast. ``bf16=None``: on CUDA when the GPU supports it, never
    on CPU. Returns ``torch.bfloat16``, or None for plain float32.
    """
    if bf16 is None:
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return torch.bfloat16 if bf16 else None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` on ``device`` to ``dtype`` (from :func:`autocast_dtype`), or a null context for None."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def to_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """A torch dtype from a dtype, its name (``"bfloat16"``), ``"auto"`` or None (both: keep the stored one)."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return None
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"dtype must be a torch dtype or its name (e.g. 'bfloat16'), got {dtype!r}.")
    return resolved


def adamw(params: list[nn.Parameter], lr: float, weight_decay: float = 0.0) -> torch.optim.AdamW:
    """The AdamW every trainer uses: torch's fused kernel when every weight is a float tensor on CPU or CUDA.

    The fused step is one kernel over all the weights instead of a loop of small ops per weight:
    on a CPU it took SmolLM2-135M's full step from about 0.8 s to 0.2 s (one thread), a fifth of a
    warm start step. Same update as the plain loop, up to float rounding (tested).
    """
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


def add_lora(lm: nn.Module, lora: dict[str, Any]) -> nn.Module:
    """Wrap ``lm`` with peft LoRA adapters (``lora`` overrides ``LoraConfig`` defaults; all linear layers by default)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as error:  # pragma: no cover - peft ships with the agents extra
        raise ImportError("LoRA needs peft: pip install 'text_gym[agents]' (or pip install peft).") from error
    options = {"task_type": "CAUSAL_LM", "target_modules": "all-linear", **lora}
    with warnings.catch_warnings():
        # peft reads model.is_gradient_checkpointing, which transformers 5.x deprecates; the
        # warning is about peft's code, not the user's, and would show on every LoRA run.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(lm, LoraConfig(**options))


def copy_trunk(decoder: nn.Module, layers: int | None) -> nn.Module:
    """A trainable copy of a decoder, cut to its first ``layers`` blocks (all when None): a separate critic's trunk."""
    trunk = copy.deepcopy(decoder)
    if layers is not None:
        blocks = getattr(trunk, "layers", None)
        if not isinstance(blocks, nn.ModuleList):
            raise ValueError(f"critic_layers needs a decoder with a `layers` ModuleList, got {type(trunk).__name__}.")
        if layers > len(blocks):
            raise ValueError(f"critic_layers must be at most the {len(blocks)} layers of the LM, got {layers}.")
        trunk.layers = blocks[:layers]
        trunk.config.num_hidden_layers = layers
        if isinstance(getattr(trunk.config, "layer_types", None), list):
            trunk.config.layer_types = trunk.config.layer_types[:layers]
    return trunk.requires_grad_(True)


def enable_checkpointing(module: nn.Module) -> None:
    """Turn on activation (gradient) checkpointing for a transformers module."""
    # use_reentrant=False: gradients reach LoRA adapters without enable_input_require_grads().
    options = {"use_reentrant": False}
    if hasattr(module, "activation_checkpointing_enable"):  # transformers >= 5.x
        module.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
    else:
        module.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)


def disable_dropout(module: nn.Module) -> None:
    """Set every dropout probability in ``module`` to 0: RL ratios assume the same function at rollout and update."""
    for sub in module.modules():
        if isinstance(sub, nn.Dropout):
            sub.p = 0.0
        for name in ("attention_dropout", "dropout"):
            if isinstance(getattr(sub, name, None), float):
                setattr(sub, name, 0.0)
