"""The stats chart: decisions per day and the median time to a decision, as a PNG."""

from __future__ import annotations

import io
from datetime import timedelta

from orchestrator.readers.stats import Stats


def stats_chart(stats: Stats) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # no display: render to memory
    from matplotlib import pyplot as plt

    first, last = stats.since.date(), stats.until.date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)][-60:]
    counts = [stats.decisions_per_day.get(d, 0) for d in days]
    medians = [stats.median_per_day.get(d) for d in days]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, dpi=100)
    from matplotlib.ticker import MaxNLocator

    top.bar(days, counts, color="#1d3557")
    top.yaxis.set_major_locator(MaxNLocator(integer=True))
    top.set_ylabel("decisions")
    title = "Baton" + (f" · {stats.flow}" if stats.flow else "") + f" · {first} to {last}"
    top.set_title(title)
    points = [(d, m / 60) for d, m in zip(days, medians, strict=True) if m is not None]
    if points:
        bottom.plot([p[0] for p in points], [p[1] for p in points], marker="o", color="#e63946")
    bottom.set_ylabel("median minutes\nto a decision")
    for axis in (top, bottom):
        axis.grid(axis="y", alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()

