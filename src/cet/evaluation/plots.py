"""Plots for reports (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def grouped_bars(groups: dict[str, dict[str, float]], title: str, target: Path, ylabel: str = "") -> Path:
    """One bar group per outer key, one bar per inner key (e.g. metric -> mode -> value)."""
    names = list(groups)
    series = list(dict.fromkeys(s for g in groups.values() for s in g))
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(names)), 4))
    for i, s in enumerate(series):
        xs = [j + i * width - 0.4 + width / 2 for j in range(len(names))]
        bars = ax.bar(xs, [groups[n].get(s, 0.0) for n in names], width, label=s)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(range(len(names)), names)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, max([v for g in groups.values() for v in g.values()] + [0]) * 1.15 or 1)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=min(len(series), 5), frameon=False)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


def curves(series: dict[str, list[float]], title: str, target: Path, xlabel: str = "step",
           ylabel: str = "") -> Path:
    """One line per series (e.g. training loss per phase), against its index."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in series.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if series:
        ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


def interval_dots(values: dict[str, tuple[float, float, float]], title: str, target: Path, xlabel: str = "") -> Path:
    """One row per name: the estimate with its interval (low, high), and a line at 0 (e.g. paired differences)."""
    names = list(values)
    fig, ax = plt.subplots(figsize=(6, max(2.5, 0.45 * len(names) + 1)))
    for row, name in enumerate(names):
        estimate, low, high = values[name]
        ax.plot([low, high], [row, row], color="tab:blue")
        ax.plot([estimate], [row], "o", color="tab:blue")
    ax.axvline(0.0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target
