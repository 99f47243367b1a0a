"""Trend charts as PNG bytes. matplotlib's object API with the Agg canvas: no pyplot, no global state."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def trend_png(points: Sequence[tuple[date, int]], *, title: str) -> bytes:
    """Daily counts as a bar chart (blocking: call it from a worker thread)."""
    fig = Figure(figsize=(8, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    days = [d for d, _ in points]
    counts = [n for _, n in points]
    ax.bar(days, counts, color="#c0392b", width=0.8)
    ax.set_title(title, fontsize=11, parse_math=False)
    ax.set_ylabel("posts / day")
    ax.grid(axis="y", alpha=0.3)
    ax.set_ylim(bottom=0, top=max([1, *counts]) * 1.15)
    ax.yaxis.get_major_locator().set_params(integer=True)
    fig.autofmt_xdate()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
