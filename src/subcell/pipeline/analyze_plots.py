"""Plots of ``subcell analyze``: class frequencies, size violins, an overlay; comparisons.

Figures are drawn with matplotlib's Agg canvas directly (no pyplot, no global backend
change); the overlay is written pixel for pixel with Pillow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["overlay_image", "plot_analysis", "plot_compare"]

#: Class colours (RGB), in the order a plugin lists its classes.
PALETTE = (
    (230, 75, 53),
    (77, 187, 213),
    (0, 160, 135),
    (243, 155, 127),
    (132, 145, 180),
    (145, 209, 194),
)


def plot_analysis(analysis, out: Path) -> list[Path]:
    """``class_frequencies.png``, ``sizes_violin.png`` and ``overlay.png`` in ``out``."""
    classes = _classes(analysis)
    size_key = analysis.summary.get("size_column")
    c = analysis.objects.columns
    paths = []
    if classes:
        counts = [int((c["class"] == k).sum()) for k in classes]
        fig, ax = _figure((1.2 + 0.9 * len(classes), 3.2))
        ax.bar(classes, counts, color=[_hex(i) for i in range(len(classes))])
        total = max(sum(counts), 1)
        for i, n in enumerate(counts):
            ax.annotate(f"{n} ({100 * n / total:.0f} %)", (i, n), ha="center", va="bottom")
        ax.set_ylabel("objects")
        ax.set_title("class frequencies")
        paths.append(_save(fig, out / "class_frequencies.png"))
    if size_key is not None:
        groups = classes or ["all"]
        values = [c[size_key][c["class"] == k] if classes else c[size_key] for k in groups]
        fig, ax = _figure((1.2 + 0.9 * len(groups), 3.2))
        _violins(ax, values, groups)
        ax.set_ylabel(size_key)
        ax.set_title("sizes by class")
        paths.append(_save(fig, out / "sizes_violin.png"))
    image = overlay_image(analysis.labels, c, classes, analysis.skeleton)
    Image.fromarray(image).save(out / "overlay.png")
    paths.append(out / "overlay.png")
    return paths


def overlay_image(labels, columns, classes, skeleton=None) -> np.ndarray:
    """RGB (Y, X) uint8: objects coloured by class, skeleton in white (3D: max projection)."""
    lut = np.zeros((int(labels.max()) + 1 if labels.size else 1, 3), dtype=np.uint8)
    lut[1:] = (128, 128, 128)
    if classes and len(columns["label"]):
        index = {k: i for i, k in enumerate(classes)}
        colour = np.array([PALETTE[index[k] % len(PALETTE)] for k in columns["class"]])
        lut[columns["label"]] = colour.astype(np.uint8)
    rgb = lut[labels].max(axis=0)
    if skeleton is not None:
        rgb[np.asarray(skeleton).any(axis=0)] = (255, 255, 255)
    return rgb


def plot_compare(
    fractions: dict[str, dict[str, list[float]]],
    sizes: dict[str, dict[str, np.ndarray]],
    size_key: str | None,
    out: Path,
) -> list[Path]:
    """Per-condition violins (as the paper's Fig. 4): class fractions per image and sizes.

    Parameters
    ----------
    fractions
        class -> condition -> the class's fraction in each image of that condition.
    sizes
        class -> condition -> object sizes.
    size_key
        The size column plotted (axis label).
    out
        Folder for ``compare_fractions.png`` and ``compare_sizes.png``.
    """
    paths = []
    for name, data, label in (
        ("compare_fractions.png", fractions, "fraction of objects per image"),
        ("compare_sizes.png", sizes if size_key else {}, size_key),
    ):
        if not data:
            continue
        fig, axes = _figure((0.5 + 2.6 * len(data), 3.4), ncols=len(data))
        for ax, (klass, by_condition) in zip(np.atleast_1d(axes), data.items(), strict=True):
            _violins(ax, list(by_condition.values()), list(by_condition))
            ax.set_title(klass)
            ax.set_ylabel(label)
        paths.append(_save(fig, out / name))
    return paths


def _classes(analysis) -> list[str]:
    c = analysis.objects.columns
    if "class" not in c:
        return []
    listed = list(analysis.summary.get("counts", {}))
    present = [str(k) for k in np.unique(c["class"]) if str(k) not in listed]
    return [str(k) for k in listed] + present


def _violins(ax, values, names) -> None:
    """Violins where a group has two or more values, points for every value."""
    positions = np.arange(len(names))
    data = [np.asarray(v, dtype=float) for v in values]
    data = [v[np.isfinite(v)] for v in data]
    wide = [i for i, v in enumerate(data) if v.size >= 2 and np.ptp(v) > 0]
    if wide:
        parts = ax.violinplot([data[i] for i in wide], positions=positions[wide], widths=0.8)
        for body, i in zip(parts["bodies"], wide, strict=True):
            body.set_facecolor(_hex(i))
            body.set_alpha(0.6)
    rng = np.random.default_rng(0)  # jitter only: the same figure every time
    for i, v in enumerate(data):
        ax.scatter(i + rng.uniform(-0.12, 0.12, v.size), v, s=4, color="k", alpha=0.5)
    ax.set_xticks(positions, names)


def _figure(size, ncols: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, axes


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


def _hex(i: int) -> str:
    return "#{:02x}{:02x}{:02x}".format(*PALETTE[i % len(PALETTE)])
