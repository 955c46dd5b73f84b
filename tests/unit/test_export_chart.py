"""gateway/export/chart.py: the bars, one PolyCollection per process, draw what Axes.bar draws,
bit for bit, and a chart renders the same bytes twice."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from matplotlib import style
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import NDArray

from gateway.export import chart

Bars = Callable[[Axes, NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], str, str], None]


def with_axes_bar(ax: Axes, x: NDArray[np.int64], t: NDArray[np.float64], bottom: NDArray[np.float64], colour: str, label: str) -> None:
    ax.bar(x, t, bottom=bottom, color=colour, label=label, width=chart.BAR_WIDTH)


def with_collection(ax: Axes, x: NDArray[np.int64], t: NDArray[np.float64], bottom: NDArray[np.float64], colour: str, label: str) -> None:
    chart._stacked_bars(ax, x, t, bottom, colour=colour, label=label)


def png(bars: Bars, tonnes: NDArray[np.float64]) -> bytes:
    with style.context("default"):
        fig = Figure(figsize=(6.0, 3.0), dpi=chart.DPI)
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        x = np.arange(tonnes.shape[0])
        bottom = np.zeros(tonnes.shape[0])
        for j in range(tonnes.shape[1]):
            bars(ax, x, tonnes[:, j], bottom, f"C{j}", f"process {j}")
            bottom += tonnes[:, j]
        if bars is with_collection and ax.collections:
            ax.autoscale_view()  # what render_chart does after its bars
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


rng = np.random.default_rng(11)
last_zero = rng.uniform(1.0, 9.0, (10, 3))
last_zero[:, 2] = 0.0


@pytest.mark.parametrize(
    "tonnes",
    [rng.uniform(1.0, 9.0, (31, 4)), rng.uniform(-5.0, 5.0, (30, 3)), last_zero, np.zeros((28, 2)), np.zeros((28, 0))],
    ids=["positive", "negative", "a series of zeros on top", "all zero", "no process"],
)
def test_stacked_bars_draw_the_pixels_of_axes_bar(tonnes: NDArray[np.float64]) -> None:
    assert png(with_collection, tonnes) == png(with_axes_bar, tonnes)


def test_a_chart_renders_the_same_bytes_twice() -> None:
    labels = [f"2026-11-{d:02d}" for d in range(1, 31)]
    keys = [("direct", "blast_furnace"), ("direct", "sinter"), ("indirect", "utilities")]
    grams = rng.integers(0, 5_000_000_000, (30, 3))
    budget = {"scope": "direct", "allowance_t": 365_000.0}
    trajectory = np.linspace(1000.0, 30_000.0, 30)

    def render() -> bytes:
        return chart.render_chart(labels, keys, grams, title="works — 2026-11", budget=budget, trajectory_t=trajectory)

    assert render() == render()
