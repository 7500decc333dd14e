"""The report's PNG plots (matplotlib, headless): metric bars with intervals, grid heatmaps, per-turn decay, failures."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evaluation.failures import LABELS
from evaluation.runner import METRIC_INFO

logger = logging.getLogger(__name__)

BAR_METRICS = (
    "bleu", "f1", "meteor", "coherence", "off_topic", "failure_rate",
    "distinct_1", "distinct_2", "entropy_4", "self_bleu", "length", "repeated_3gram",
)  # fmt: skip
HEATMAP_METRICS = ("coherence", "f1", "distinct_2", "self_bleu", "failure_rate", "length")
TURN_PLOTS = (("coherence", "coherence"), ("off_topic", "off-topic rate"), ("self_repeat", "repeats own earlier reply"))
COLORS = {"preset": "#4C72B0", "grid": "#8DA0CB", "human": "#999999", "reference": "#DD8452"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display here or in CI
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def metric_bars(results: Sequence, reference: str, path: Path) -> Path:
    """One panel per metric: a bar per setting with its 95% bootstrap interval; the reference in orange."""
    plt = _pyplot()
    keys = [k for k in BAR_METRICS if any(k in r.values for r in results)]
    cols = 3
    rows = max(1, (len(keys) + cols - 1) // cols)
    height = max(2.2, 0.28 * len(results) + 0.8)
    fig, axes = plt.subplots(rows, cols, figsize=(15, height * rows), squeeze=False)
    names = [r.name for r in results]
    y = np.arange(len(results))
    for ax, key in zip(axes.flat, keys, strict=False):
        info = METRIC_INFO[key]
        values = np.array([r.values.get(key, np.nan) for r in results], dtype=float)
        lows = np.array([r.intervals.get(key, [np.nan, np.nan])[0] for r in results], dtype=float)
        highs = np.array([r.intervals.get(key, [np.nan, np.nan])[1] for r in results], dtype=float)
        err = np.vstack([np.clip(values - lows, 0, None), np.clip(highs - values, 0, None)])
        colors = [COLORS["reference"] if r.name == reference else COLORS[r.kind] for r in results]
        ax.barh(y, np.nan_to_num(values), xerr=np.nan_to_num(err), color=colors, capsize=2, height=0.7)
        ref = next((r for r in results if r.name == reference), None)
        if ref is not None and key in ref.values:
            ax.axvline(ref.values[key], color=COLORS["reference"], linestyle="--", linewidth=1)
        direction = {True: "higher is better", False: "lower is better", None: ""}[info.higher_is_better]
        ax.set_title(f"{info.label}  ({direction})" if direction else info.label, fontsize=10)
        ax.set_yticks(y, names, fontsize=8)
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.suptitle(f"Metrics per setting, 95% bootstrap intervals (orange: reference {reference})", fontsize=12)
    fig.tight_layout()
    return _save(fig, path)


def grid_heatmaps(results: Sequence, axes_values: dict[str, list[float]], path: Path) -> Path:
    """A heatmap per metric over the sampling grid (rows: first axis, columns: second axis)."""
    plt = _pyplot()
    names = list(axes_values)
    row_name, col_name = names[0], names[1] if len(names) > 1 else None
    row_vals = axes_values[row_name]
    col_vals = axes_values[col_name] if col_name else [None]
    grid = [r for r in results if r.kind == "grid"]
    keys = [k for k in HEATMAP_METRICS if any(k in r.values for r in grid)]
    fig, axes = plt.subplots(2, (len(keys) + 1) // 2, figsize=(5 * ((len(keys) + 1) // 2), 8), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        info = METRIC_INFO[key]
        table = np.full((len(row_vals), len(col_vals)), np.nan)
        for r in grid:
            i = row_vals.index(r.point[row_name])
            j = col_vals.index(r.point[col_name]) if col_name else 0
            table[i, j] = r.values.get(key, np.nan)
        # colour so that "better" is always green, whatever the metric's direction
        cmap = "RdYlGn" if info.higher_is_better is not False else "RdYlGn_r"
        image = ax.imshow(table, cmap=cmap if info.higher_is_better is not None else "Blues", aspect="auto")
        for i in range(table.shape[0]):
            for j in range(table.shape[1]):
                if not np.isnan(table[i, j]):
                    ax.text(j, i, format(table[i, j], info.fmt), ha="center", va="center", fontsize=10)
        ax.set_yticks(range(len(row_vals)), [f"{v:g}" for v in row_vals])
        ax.set_xticks(range(len(col_vals)), [f"{v:g}" if v is not None else "" for v in col_vals])
        ax.set_ylabel(row_name)
        ax.set_xlabel(col_name or "")
        ax.set_title(info.label, fontsize=11)
        fig.colorbar(image, ax=ax, shrink=0.8)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.suptitle("Sampling grid (green = better; length has no better direction)", fontsize=12)
    fig.tight_layout()
    return _save(fig, path)


def turn_decay(results: Sequence, path: Path) -> Path:
    """Coherence, off-topic rate and self-repetition per bot turn of the replayed conversations."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(TURN_PLOTS), figsize=(15, 4))
    for ax, (key, title) in zip(axes, TURN_PLOTS, strict=True):
        for r in results:
            if r.multiturn is None:
                continue
            values = [np.nan if v is None else v for v in r.multiturn.per_turn.get(key, [])]
            ax.plot(range(1, len(values) + 1), values, marker="o", label=r.name)
        ax.set_title(title)
        ax.set_xlabel("bot turn in the conversation")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].legend(fontsize=8)
    fig.suptitle("Across turns: the bot replies to the recorded partner, its own replies become history", fontsize=12)
    fig.tight_layout()
    return _save(fig, path)


def failure_matrix(results: Sequence, path: Path) -> Path:
    """Share of replies with each failure label, settings x labels, annotated with counts."""
    plt = _pyplot()
    table = np.array([[r.failures.get(label, 0) for label in LABELS] for r in results], dtype=float)
    totals = np.array([max(len(r.labels), 1) for r in results], dtype=float)[:, None]
    shares = table / totals
    fig, ax = plt.subplots(figsize=(10, 0.4 * len(results) + 1.5))
    image = ax.imshow(shares, cmap="Reds", vmin=0, vmax=max(0.3, float(shares.max())), aspect="auto")
    for i in range(table.shape[0]):
        for j in range(table.shape[1]):
            ax.text(j, i, f"{int(table[i, j])}", ha="center", va="center", fontsize=9)
    ax.set_xticks(range(len(LABELS)), LABELS)
    ax.set_yticks(range(len(results)), [r.name for r in results])
    ax.set_title("Failure labels per setting (count; colour = share of replies)")
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    return _save(fig, path)
