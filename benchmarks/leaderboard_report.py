"""The leaderboard's outputs: ``results.json``, ``leaderboard.md``, the PNG plots and the README section.

Every file is replaced atomically (:mod:`agents.atomic`), so a crash leaves the previous one whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agents.atomic import atomic_write_text
from benchmarks.common import (
    check_section,
    machine_text,
    markdown_table,
    provenance,
    replace_section,
    writable_folder,
)
from benchmarks.leaderboard_args import AgentSpec, Args
from benchmarks.leaderboard_scoring import METRICS


def table(rows: list[dict[str, Any]], coherence: bool = True) -> str:
    """The markdown leaderboard: ``mean ± std`` over seeds for every metric."""
    shown = [k for k in METRICS if coherence or k != "coherence"]
    formatted = []
    for row in rows:
        cells = {"task": row["task"], "agent": row["agent"]}
        for key in shown:
            digits = 0 if key in ("peak_mb", "tokens_per_s") else 1 if key in ("length", "episodes_per_s") else 3
            mean, std = row[key], row[f"{key}_std"]
            if mean is None or mean != mean:  # NaN, or null in a results.json
                cells[METRICS[key][0]] = "n/a"
                continue
            cells[METRICS[key][0]] = f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if row["seeds"] > 1 else "")
        formatted.append(cells)
    return markdown_table(formatted, ["task", "agent"] + [METRICS[k][0] for k in shown])


def write_outputs(
    args: Args,
    rows: list[dict[str, Any]],
    per_seed: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    command: str,
    seconds: float,
) -> dict[str, Any]:
    """Write ``results.json``, ``leaderboard.md`` and the PNG plots into ``args.out``; return the JSON."""
    samples = [
        {"task": r["task"], "agent": r["agent"], **{k: e[k] for k in ("prompt", "text", "references")}}
        for r in runs
        if r["seed"] == args.seeds[0]
        for e in r["episodes"][:3]
    ]
    report = {
        "benchmark": "leaderboard",
        **provenance(args),
        "command": command,
        "seconds": seconds,
        "metrics": {k: v[1] for k, v in METRICS.items()},
        "rows": rows,
        "per_seed": per_seed,
        "samples": samples,
    }
    atomic_write_text(Path(args.out) / "results.json", json.dumps(_finite(report), indent=2, default=str))
    render(args, report)
    return report


def render(args: Args, report: dict[str, Any]) -> None:
    """Write ``leaderboard.md`` and the PNG plots of ``report`` into ``args.out``."""
    from benchmarks import plots

    out, rows = Path(args.out), report["rows"]
    md = header(report) + "\n\n" + table(rows, args.coherence) + "\n\n" + legend(args) + "\n"
    atomic_write_text(out / "leaderboard.md", md)
    for key, (title, _) in METRICS.items():
        if key != "coherence" or args.coherence:
            plots.bar_chart(  # written atomically by plots.save_figure
                rows,
                key,
                out / f"bar_{key}.png",
                label=title,
                log=key in ("episodes_per_s", "tokens_per_s"),
                title=f"{title} ({args.model}, {args.split} split)",
            )
    curves = learning_curve_logs(args)
    if curves:
        plots.learning_curves(curves, out / "learning_curves.png")


def learning_curve_logs(args: Args) -> dict[str, str]:
    """Label -> trainer CSV log: ``--curves``, and the ``progress.csv`` next to each checkpoint."""
    curves = {Path(p).parent.name: p for p in args.curves}
    for spec in map(AgentSpec.parse, args.agents):
        log = Path(spec.model).parent / "progress.csv" if spec.model else None
        if log is not None and log.is_file():
            curves.setdefault(spec.label, str(log))
    return curves


def _finite(value: Any) -> Any:
    """``value`` with NaN floats replaced by ``None`` (JSON has no NaN)."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def header(report: dict[str, Any]) -> str:
    """One line of provenance: date, commit, machine, and the command that made the table."""
    return (
        f"_{report['date'][:10]} · commit {report['git_sha']} · {machine_text(report['machine'])} · "
        f"torch {report['machine']['torch']} · {report['seconds'] / 60:.1f} min_\n\n`{report['command']}`"
    )


def legend(args: Args) -> str:
    """What the rows and columns mean, for the markdown file."""
    if args.repeat_deterministic:
        seeds = "every agent plays every seed (the deterministic ones give the same replies each time)"
    else:
        seeds = (
            f"the deterministic agents (greedy, beam, copy-prompt, reference, trained) play once, with seed {args.seeds[0]}, "
            "since their replies do not depend on it"
        )
    lines = [
        f"Model `{args.model}`; the first {args.episodes} prompts of each task's `{args.split}` split; replies of at "
        f"most {args.max_new_tokens or 'the env default of 32'} tokens for every agent (the reference ceiling included), {args.batch_size} episodes at a time"
        + (
            "; each agent in its own process"
            if args.isolate
            else "; all agents in one process, so peak MB is only what each agent added to the process's peak"
        )
        + f". Mean ± standard deviation over seeds {args.seeds} for random and sampling; {seeds}."
    ]
    lines += [
        f"- **{title}**: {text}." for key, (title, text) in METRICS.items() if args.coherence or key != "coherence"
    ]
    return "\n".join(lines)


def update_readme(path: str, args: Args, report: dict[str, Any]) -> None:
    """Replace the README's leaderboard section with this run's table, provenance and chart."""
    readme = Path(path)
    chart = Path(args.out) / "bar_bleu.png"
    try:
        link = chart.resolve().relative_to(readme.resolve().parent)
        image = f"\n\n![Mean sentence BLEU per task and agent]({link.as_posix()})"
    except ValueError:
        image = ""  # the output folder is outside the README's tree: no relative link
    body = header(report) + "\n\n" + table(report["rows"], args.coherence) + "\n\n" + legend(args) + image
    replace_section(readme, "leaderboard", body)


def check_outputs(args: Args) -> None:
    """Check, before anything plays, that ``--out`` is a writable folder and ``--readme`` has its markers.

    Raises:
        ValueError: ``--out`` is a file or cannot be written, or ``--readme`` is missing or
            lacks ``<!-- leaderboard:start -->`` and ``<!-- leaderboard:end -->``.
    """
    writable_folder(args.out)
    if args.readme:
        check_section(args.readme, "leaderboard")
