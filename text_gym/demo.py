"""Show TextGen-v0 at work: SmolLM2 answers chatterbot questions token by token, scored by BLEU.

    python -m text_gym.demo [--episodes 3] [--env TextGen-v0] [--model smollm2-135m]

The model acts greedily with its KV cache; each action goes through ``env.step``, so the scores
printed are the environment's own. (The trained agents live in the ``agents`` package.)
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import torch

import text_gym  # noqa: F401  (registers the environments)
from text_gym.models import load_model


@torch.no_grad()
def run_episode(env: gym.Env, model: torch.nn.Module, index: int) -> dict:
    """Play one greedy episode on sample ``index``; return the final ``info``."""
    obs, _ = env.reset(options={"index": index})
    mask = torch.as_tensor(obs["attention_mask"])
    ids = torch.as_tensor(obs["input_ids"])[mask == 1][None]  # (1, prompt_len)
    past, done, info = None, False, {}
    while not done:
        out = model(input_ids=ids, past_key_values=past, use_cache=True)
        past = out.past_key_values
        action = int(out.logits[0, -1].argmax())
        obs, _, terminated, truncated, info = env.step(action)
        ids = torch.tensor([[action]])  # only the new token: the cache holds the rest
        done = terminated or truncated
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="TextGen-v0")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--split", default="test")
    parser.add_argument("--episodes", type=int, default=4)
    args = parser.parse_args()

    env = gym.make(args.env, tokenizer=args.model, split=args.split, render_mode="ansi")
    model = load_model(args.model).eval()
    total = 0.0
    for index in range(args.episodes):
        info = run_episode(env, model, index)
        total += info["scores"]["reward"]
        print(env.unwrapped.render())
    print(f"mean reward over {args.episodes} episodes of {args.env} ({args.split} split): {total / args.episodes:.3f}")


if __name__ == "__main__":
    main()
