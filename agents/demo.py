"""Show a TextGen env at work: an LM replies token by token next to copying the input, scored by the env.

    python -m agents.demo [--episodes 4] [--env TextGen-v0] [--model smollm2-135m] [--split test]

The LM acts greedily with its KV cache (:class:`~agents.baselines.GreedyLMAgent`) and every
token goes through ``env.step``, so the scores printed are the environment's own. The same
prompts are also answered by ``copy-prompt`` (the input, unchanged), so you see at once what a
reply must beat. Both play through :func:`agents.evaluation.evaluate`, like every report.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import text_gym  # noqa: F401  (registers the environments)
from agents.baselines import CopyPromptAgent, GreedyLMAgent
from agents.evaluation import evaluate


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m agents.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="TextGen-v0")
    parser.add_argument("--model", default="smollm2-135m", help="model preset or folder (also the env's tokenizer)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--episodes", type=int, default=4)
    args = parser.parse_args(argv)

    kwargs = {"tokenizer": args.model}
    common = {"split": args.split, "n_episodes": args.episodes, "batch_size": args.episodes}
    lm = evaluate(
        lambda envs, seed: GreedyLMAgent(args.model), args.env, kwargs, label=f"{args.model} greedy", **common
    )
    copy = evaluate(lambda envs, seed: CopyPromptAgent(envs), args.env, kwargs, label="copy-prompt", **common)
    for mine, copied in zip(lm.episodes[0], copy.episodes[0], strict=True):
        print(f"\nprompt      : {mine['prompt']}")
        print(f"references  : {' | '.join(mine['references'])}")
        print(f"{lm.label:<12}: {mine['text']!r}  {_scores(mine['scores'])}")
        print(f"{'copy-prompt':<12}: {copied['text']!r}  {_scores(copied['scores'])}")
    print(
        f"\nmean reward over {len(lm.episodes[0])} prompts of {args.env} ({args.split} split): "
        f"{lm.label} {lm.metrics['reward']:.3f}, copy-prompt {copy.metrics['reward']:.3f}"
    )


def _scores(scores: dict[str, float]) -> str:
    return " ".join(f"{name}={value:.3f}" for name, value in scores.items())


if __name__ == "__main__":
    main()
