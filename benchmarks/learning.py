"""Does RL earn its place? Supervised, supervised+RL and RL at one CPU budget, over seeds, on held-out BLEU.

    python -m benchmarks.learning                                   # SmolLM2-135M: translation and qa, 3 seeds
    python -m benchmarks.learning --tasks TextGen-Translate-v0 --minutes 20 --sft-minutes 10 --name learning_translate
    python -m benchmarks.learning --reward bleu=0.5,chrf=0.5 --baseline scst --beta 0.05 --name learning_scst
    python -m benchmarks.learning --quick                           # tiny model, seconds: checks the script

For each task and each seed, every trained arm gets the same budget T (``--minutes``) of process
CPU time spent TRAINING (validation is left out; one torch thread makes CPU time wall time):

- ``supervised``: teacher forcing on the train split's references for T;
- ``supervised+RL``: the supervised arm's model at t (``--sft-minutes``), then GRPO for T - t,
  its KL reference (``--beta``) being the model at t. The two arms share their first t exactly,
  so their paired difference is RL against more teacher forcing for the same T - t;
- ``RL``: GRPO from the untrained model for T;

and the controls: ``untrained`` greedy, ``copy-prompt`` (reply with the input), ``reference`` (the
ceiling) and ``beam``, beam search (``--beams``) on the selected supervised model: if it matches
supervised+RL greedy, RL only bought search (Choshen et al. 2020).

Every trained arm is scored on the ``validation`` split on one schedule of training CPU time
(``--eval-every-minutes``) and the best model is kept (:class:`agents.trainers.selection.ValidationSelection`);
that model alone is played once on every ``test`` prompt, greedily, by :mod:`agents.evaluation`.
Reports give per-seed rows, the mean and spread over seeds, and paired-bootstrap 95% intervals
(over seeds and test prompts, :mod:`benchmarks.stats`) of the differences that matter. BLEU is
reported whatever ``--reward`` trained on.

Writes ``<name>.json`` (every row, argument and validation history, the intervals, git SHA and
machine), ``<name>.md`` and ``<name>.png`` (validation BLEU over training CPU-minutes) to
``--out``, appends the run, failed or not, to ``<out>/learning_runs.jsonl``, and with ``--readme``
rewrites the README's learning section.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import text_gym  # noqa: F401  (registers the environments)
from benchmarks import learning_arms, learning_report
from benchmarks.common import append_jsonl, parse_args, set_threads, writable_folder
from benchmarks.learning_args import Args

RUNS_LOG = "learning_runs.jsonl"
"""Every run of the benchmark, one JSON line each (configuration, headline figures or error)."""


def main(args: Args) -> dict[str, Any]:
    """Run every task, seed and arm; write the reports; log the run (a failure too, then re-raise).

    Returns:
        The report: ``rows`` (one per task, arm and seed), ``summary`` (mean and spread per
        task and arm), ``intervals`` and ``histories`` (the validation curves).
    """
    set_threads(args.threads)
    folder = writable_folder(args.out)
    results: list[Any] = []
    try:
        for env_id in args.tasks:
            for seed in args.seeds:
                results += learning_arms.run_seed(args, env_id, int(seed))
        report = learning_report.build_report(args, results)
        learning_report.write_outputs(args, report)
    except BaseException as error:
        append_jsonl(folder / RUNS_LOG, learning_report.failed_record(args, results, error, traceback.format_exc()))
        raise
    append_jsonl(folder / RUNS_LOG, learning_report.headline(args, report))
    return report


if __name__ == "__main__":
    main(parse_args(Args, sys.argv[1:]))
