"""PNG plots of one run's results (matplotlib, no display needed).

- `latency.png`: p50/p90/p99 per target and scenario (median of the rounds; the bars' whiskers
  span the rounds' lowest and highest value), log scale;
- `cpu.png`: CPU per target and scenario in % of one core (mean of the rounds): the target's
  processes, the load generator, the other (idle) targets and the rest of the machine;
- `resume.png`: ytmaker's resume time against the number of missed updates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.harness.report import cpu_groups

COLORS = {"p50": "#4c72b0", "p90": "#dd8452", "p99": "#c44e52"}
GROUP_COLORS = {
    "target": "#4c72b0",
    "loadgen": "#8c8c8c",
    "other targets": "#ccb974",
    "steal": "#f0c0c0",
    "rest of machine": "#dddddd",
}


def _by(rounds: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for phase in rounds:
        if "error" not in phase:
            out.setdefault((phase["target"], phase["scenario"]), []).append(phase)
    return out


def _targets(results: dict[str, Any]) -> list[str]:
    return list(results["config"]["targets"])


def latency_plot(results: dict[str, Any], path: Path, title: str) -> None:
    grouped = _by(results["rounds"])
    scenarios = sorted({s for _, s in grouped})
    if not scenarios:
        return
    targets = _targets(results)
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5.5 * len(scenarios), 4.2), sharey=True)
    axes = axes if len(scenarios) > 1 else [axes]
    for ax, scenario in zip(axes, scenarios, strict=True):
        for i, target in enumerate(targets):
            phases = grouped.get((target, scenario), [])
            empty = sum(1 for p in phases if not p["latency_ms"]["count"])
            if empty:
                ax.annotate(f"{empty} round(s):\nnothing arrived", (i, 1), xytext=(0, -4),
                            xycoords=("data", "axes fraction"), textcoords="offset points",
                            ha="center", va="top", fontsize="small", color="#c44e52")  # fmt: skip
            for j, key in enumerate(("p50", "p90", "p99")):
                values = sorted(p["latency_ms"][key] for p in phases if p["latency_ms"]["count"])
                if not values:
                    continue
                median = values[len(values) // 2]
                x = i + (j - 1) * 0.27
                ax.bar(x, median, 0.25, color=COLORS[key], label=key if i == 0 else None)
                ax.plot([x, x], [values[0], values[-1]], color="black", linewidth=1)
        ax.set_xticks(range(len(targets)), targets)
        ax.set_yscale("log")
        ax.set_title(scenario)
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0].set_ylabel("event produced → update received (ms)")
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cpu_plot(results: dict[str, Any], path: Path, title: str) -> None:
    grouped = _by(results["rounds"])
    scenarios = sorted({s for _, s in grouped})
    if not scenarios:
        return
    targets = _targets(results)
    fig, ax = plt.subplots(figsize=(1.6 * len(targets) * len(scenarios) + 2, 4.2))
    labels = []
    for k, (target, scenario) in enumerate((t, s) for s in scenarios for t in targets):
        phases = grouped.get((target, scenario), [])
        if not phases:
            continue
        groups = [cpu_groups(p["cpu"], target) for p in phases]
        bottom = 0.0
        for name, color in GROUP_COLORS.items():
            value = sum(g[name] for g in groups) / len(groups)  # means add up, medians do not
            ax.bar(k, value, 0.6, bottom=bottom, color=color, label=name if k == 0 else None)
            bottom += value
        labels.append((k, f"{target}\n{scenario}"))
    ax.set_xticks([k for k, _ in labels], [t for _, t in labels])
    ax.set_ylabel("% of one core (mean of the rounds)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def resume_plot(results: dict[str, Any], path: Path, title: str) -> None:
    resume = results.get("resume") or []
    if not isinstance(resume, list) or not resume:
        return
    fig, ax = plt.subplots(figsize=(5.5, 4))
    done = [r for r in resume if r["resume_s_median"] is not None]
    ax.plot([r["missed"] for r in done], [r["resume_s_median"] for r in done], marker="o")
    for r in resume:
        ax.scatter([r["missed"]] * len(r["resume_s"]), r["resume_s"], color="black", s=10)
        if r["failed"]:
            ax.annotate(f"failed {len(r['failed'])}×", (r["missed"], 0), color="#c44e52",
                        xycoords=("data", "axes fraction"), xytext=(0, 8),
                        textcoords="offset points", ha="center")  # fmt: skip
    sizes = [r["missed"] for r in resume]
    ax.set_xscale("log")
    ax.set_xlim(min(sizes) / 2, max(sizes) * 2)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("missed updates")
    ax.set_ylabel("reconnect → last missed update received (s)")
    ax.grid(alpha=0.3)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw(results: dict[str, Any], directory: Path, stem: str = "") -> list[Path]:
    """Every plot of `results` into `directory` as `<stem>latency.png` etc."""
    directory.mkdir(parents=True, exist_ok=True)
    when = results["meta"]["started"][:16].replace("T", " ")
    history = " (with history)" if results["config"].get("history") else ""
    paths = []
    for name, draw_one in (("latency", latency_plot), ("cpu", cpu_plot), ("resume", resume_plot)):
        path = directory / f"{stem}{name}.png"
        draw_one(results, path, f"{name}: {when} UTC{history}")
        if path.exists():
            paths.append(path)
    return paths
