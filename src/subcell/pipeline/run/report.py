"""Pipeline step ``report``: a Markdown page with a table of scores and the PNG figures.

``metrics`` takes evaluate outputs by label. Labels of the form ``DATASET/METHOD`` make a
table with one row per method and, per dataset, one column per score — Table 1 of the
founding paper is ``mitochondria/ours``, ``mitochondria/otsu``, ... ``vesicles/otsu``.
Other labels make one row each; a bar chart of the first score is drawn, and each row
names the steps it came from. ``comparisons`` takes compare outputs (each condition's
images, objects and class fractions, and the tests), and every PNG of the ``figures``
inputs (files, or folders of them) is copied next to the report.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import attrs

from subcell.core.errors import ConfigError, VolumeError

__all__ = ["SCORES", "ReportStep", "ReportStepConfig", "report_markdown", "score_rows"]

#: Score key -> column title; keys under ``instances`` in metrics.json are marked.
SCORES = {
    "miou": "mIoU",
    "f1": "F1",
    "precision": "precision",
    "recall": "recall",
    "moc": "MOC",
    "miou_foreground": "IoU (fg)",
    "pixel_accuracy": "pixel acc.",
    "ap50": "AP@0.5",
    "map": "mAP",
    "pq": "PQ",
}


def _scores(instance, attribute, value):
    unknown = [v for v in value if v not in SCORES]
    if not value or unknown:
        raise ValueError(
            f"'{attribute.name}' must name scores among {', '.join(SCORES)}, got {list(value)}"
        )


@attrs.frozen(kw_only=True)
class ReportStepConfig:
    """The ``report`` step.

    Attributes
    ----------
    title
        The page's title.
    text
        A paragraph under the title (Markdown).
    scores
        The columns, from ``miou``, ``f1``, ``precision``, ``recall``, ``moc``,
        ``miou_foreground``, ``pixel_accuracy`` and, with instance labels, ``ap50``,
        ``map``, ``pq``.
    """

    title: str = "subcell report"
    text: str = ""
    scores: tuple[str, ...] = attrs.field(default=("miou", "f1"), validator=_scores)


class ReportStep:
    """Writes ``report.md``, ``scores.json``, ``scores.png`` and the figures."""

    inputs = {"metrics": "many", "comparisons": "many", "figures": "many"}
    outputs = ("report",)

    def __init__(self, config: ReportStepConfig) -> None:
        self.config = config

    def run(self, inputs: dict, out: Path) -> dict[str, Path]:
        metrics = {
            label: _read_json(Path(p), "metrics.json")
            for label, p in inputs.get("metrics", {}).items()
        }
        comparisons = {
            label: _read_json(Path(p), "comparison.json")
            for label, p in inputs.get("comparisons", {}).items()
        }
        figures = _copy_figures(inputs.get("figures", {}), out / "figures")
        if not metrics and not figures and not comparisons:
            raise ConfigError("report: give it metrics, comparisons or figures")
        rows = score_rows(metrics, self.config.scores)
        (out / "scores.json").write_text(json.dumps(rows, indent=2) + "\n")
        chart = None
        if rows:
            chart = _bar_chart(rows, self.config.scores[0], out / "scores.png")
        sources = {label: _source(Path(p)) for label, p in inputs.get("metrics", {}).items()}
        parts = {"rows": rows, "sources": sources, "chart": chart, "figures": figures}
        text = report_markdown(self.config, parts, comparisons, out)
        (out / "report.md").write_text(text)
        return {"report": out / "report.md"}


def _read_json(path: Path, name: str) -> dict:
    """A JSON file, or the one called ``name`` in a folder (an evaluate or compare output)."""
    file = path / name if path.is_dir() else path
    if path.is_dir() and not file.is_file():
        found = sorted(path.rglob(name))
        file = found[0] if found else file
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise VolumeError(f"{file}: cannot read {name} ({exc})") from None


def score_rows(metrics: dict[str, dict], scores: tuple[str, ...]) -> dict[str, dict]:
    """Label -> {score: value or None} for the chosen scores."""
    rows = {}
    for label, found in metrics.items():
        instances = found.get("instances") or {}
        flat = dict(found)
        flat["ap50"] = (instances.get("ap") or {}).get("0.50")
        flat.update({k: instances.get(k) for k in ("map", "pq")})
        rows[label] = {k: flat.get(k) for k in scores}
    return rows


def _fmt(value) -> str:
    return "—" if not isinstance(value, (int, float)) else f"{value:.3f}"


def _table(rows: dict[str, dict], scores: tuple[str, ...]) -> str:
    """A Markdown table; ``DATASET/METHOD`` labels pivot to methods by datasets."""
    titles = [SCORES[k] for k in scores]
    if rows and all("/" in label for label in rows):
        split = [label.split("/", 1) for label in rows]
        datasets = list(dict.fromkeys(d for d, _ in split))
        methods = list(dict.fromkeys(m for _, m in split))
        head = ["method"] + [f"{d} {t}" for d in datasets for t in titles]
        lines = [head]
        for method in methods:
            cells = [method]
            for dataset in datasets:
                row = rows.get(f"{dataset}/{method}", {})
                cells += [_fmt(row.get(k)) for k in scores]
            lines.append(cells)
    else:
        lines = [["", *titles]]
        lines += [[label, *(_fmt(r[k]) for k in scores)] for label, r in rows.items()]
    text = ["| " + " | ".join(lines[0]) + " |", "|" + "---|" * len(lines[0])]
    text += ["| " + " | ".join(cells) + " |" for cells in lines[1:]]
    return "\n".join(text)


def _bar_chart(rows: dict[str, dict], score: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(rows)
    values = [rows[label][score] if rows[label][score] is not None else 0.0 for label in labels]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(labels) + 2), 3.2), dpi=100)
    ax.bar(range(len(labels)), values, color="#4c72b0")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(SCORES[score])
    ax.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path


def _copy_figures(inputs: dict[str, Path], folder: Path) -> list[Path]:
    copied = []
    for label, path in inputs.items():
        path = Path(path)
        pngs = sorted(path.rglob("*.png")) if path.is_dir() else [path]
        for png in pngs:
            if png.suffix.lower() != ".png":
                raise VolumeError(f"report: figure {png} is not a PNG")
            folder.mkdir(parents=True, exist_ok=True)
            safe = re.sub(r"[^\w.-]+", "-", label)
            target = folder / f"{safe}-{png.name}"
            shutil.copyfile(png, target)
            copied.append(target)
    return copied


def _source(path: Path) -> str:
    """Where ``path`` came from: the step that wrote it and the steps upstream of it."""
    from subcell.core.errors import SubcellError
    from subcell.pipeline.run.trace import trace

    try:
        node = trace(path)
    except SubcellError:
        return f"`{path}`"
    upstream, queue = [], [link.source for link in node.inputs]
    while queue:
        source = queue.pop(0)
        if source is not None and source.name not in upstream:
            upstream.append(source.name)
            queue += [link.source for link in source.inputs]
    made = f" from {', '.join(f'`{n}`' for n in upstream)}" if upstream else ""
    digest = next(iter(node.outputs.values()), None) or ""
    return f"step `{node.name}`{made} (sha256 {digest[:12]})"


def _comparison_table(comparison: dict) -> str:
    """Per condition: images, objects, and the mean fraction of each class (%)."""
    classes = comparison.get("classes") or []
    head = ["condition", "images", "objects", *(f"{k} %" for k in classes)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, found in (comparison.get("conditions") or {}).items():
        fractions = found.get("fraction_mean") or {}
        cells = [name, str(found.get("n_images")), str(found.get("n_objects"))]
        cells += ["—" if fractions.get(k) is None else f"{100 * fractions[k]:.1f}" for k in classes]
        lines.append("| " + " | ".join(cells) + " |")
    tests = (comparison.get("tests") or {}).get("fractions") or {}
    p_values = []
    for k, by in tests.items():
        pairs = [f"{pair} p = {p:.3g}" for pair, p in by.items() if p is not None]
        p_values += [f"{k}: {', '.join(pairs)}"] if pairs else []
    if p_values:
        lines += ["", "Mann-Whitney U (fractions per image): " + "; ".join(p_values)]
    return "\n".join(lines)


def report_markdown(config, parts: dict, comparisons: dict, out: Path) -> str:
    """The report page: scores (``parts``: rows, sources, chart, figures), comparisons,
    figures."""
    rows, figures = parts["rows"], parts["figures"]
    text = [f"# {config.title}", ""]
    if config.text:
        text += [config.text.strip(), ""]
    if rows:
        chart = parts["chart"].relative_to(out).as_posix()
        text += ["## Scores", "", _table(rows, config.scores), ""]
        text += [f"![{SCORES[config.scores[0]]}]({chart})", "", "Sources:", ""]
        text += [f"- {label}: {source}" for label, source in parts["sources"].items()]
        text += [""]
    for label, comparison in comparisons.items():
        title = f"## {label}: {comparison.get('plugin', '')} by condition"
        text += [title, "", _comparison_table(comparison), ""]
    if figures:
        text += ["## Figures", ""]
        text += [f"![{f.stem}]({f.relative_to(out).as_posix()})\n" for f in figures]
    text += [
        "Each step's folder holds `subcell-step.json`: its resolved config and the hashes of "
        "what it was made from (`subcell run --trace PATH` follows them).",
        "",
    ]
    return "\n".join(text)
