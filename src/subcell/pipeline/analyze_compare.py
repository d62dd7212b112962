"""``subcell analyze --compare``: conditions side by side, from several analysis folders.

Each folder is one image analysed by ``subcell analyze`` (its ``summary.json`` names the
condition; the folder name stands in when it does not). Images are grouped by condition;
per condition the class fractions are taken per image (so that the spread across images,
or cells, shows, as in the paper's Fig. 4) and the sizes per object. With two or more
conditions, each pair is compared by a two-sided Mann–Whitney U test (fractions per image,
sizes per object).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from subcell.core.errors import SubcellError

__all__ = ["compare"]


def compare(dirs, out_dir, *, plots: bool = True) -> dict:
    """Compare analyses by condition; write ``comparison.json`` (and plots) to ``out_dir``.

    Parameters
    ----------
    dirs
        Output folders of ``subcell analyze`` (each with ``summary.json`` and
        ``objects.parquet`` or ``objects.csv``).
    out_dir
        Where to write ``comparison.json``, ``compare_fractions.png`` and
        ``compare_sizes.png``.
    plots
        Write the PNGs.

    Returns
    -------
    dict
        What ``comparison.json`` holds: ``plugin``, ``size_column``, ``classes``, per
        condition ``n_images``, ``n_objects``, ``fraction_mean`` / ``fraction_sd`` and
        ``size_mean`` / ``size_median`` per class and ``mina`` means (when present), and
        ``tests`` (Mann–Whitney p-values per class and pair of conditions).

    Raises
    ------
    SubcellError
        A folder without a summary, or folders from different plugins.
    """
    runs = [_load(Path(d)) for d in dirs]
    if not runs:
        raise SubcellError("--compare needs at least one analysis folder")
    plugins = sorted({r["summary"].get("plugin") for r in runs})
    if len(plugins) > 1:
        raise SubcellError(f"cannot compare analyses of different plugins: {', '.join(plugins)}")
    size_key = runs[0]["summary"].get("size_column")
    classes = list(dict.fromkeys(k for r in runs for k in r["summary"].get("counts", {})))
    conditions = list(dict.fromkeys(r["condition"] for r in runs))
    fractions = {k: {c: [] for c in conditions} for k in classes}
    sizes = {k: {c: [] for c in conditions} for k in classes}
    for run in runs:
        counts = run["summary"].get("counts", {})
        total = sum(counts.values())
        for k in classes:
            if total:
                fractions[k][run["condition"]].append(counts.get(k, 0) / total)
            if size_key and size_key in run["objects"]:
                chosen = run["objects"]["class"] == k
                sizes[k][run["condition"]].append(run["objects"][size_key][chosen])
    sizes = {
        k: {c: np.concatenate(v) if v else np.zeros(0) for c, v in by.items()}
        for k, by in sizes.items()
    }
    result = {
        "plugin": plugins[0],
        "size_column": size_key,
        "classes": classes,
        "inputs": [str(Path(d).resolve()) for d in dirs],
        "conditions": {
            c: _condition([r for r in runs if r["condition"] == c], c, fractions, sizes)
            for c in conditions
        },
        "tests": _tests(conditions, fractions, sizes),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.json").write_text(json.dumps(result, indent=2) + "\n")
    if plots:
        from subcell.pipeline.analyze_plots import plot_compare

        plot_compare(fractions, sizes, size_key, out)
    return result


def _load(folder: Path) -> dict:
    """A folder's summary, condition and object columns."""
    path = folder / "summary.json"
    if not path.is_file():
        raise SubcellError(f"{folder}: no summary.json (not a subcell analyze output)")
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SubcellError(f"{path}: cannot read ({exc})") from exc
    return {
        "summary": summary,
        "condition": str(summary.get("condition") or folder.name),
        "objects": _objects(folder),
    }


def _objects(folder: Path) -> dict[str, np.ndarray]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    parquet, csv = folder / "objects.parquet", folder / "objects.csv"
    if parquet.is_file():
        table = pq.read_table(parquet)
    elif csv.is_file():
        table = pacsv.read_csv(csv)
    else:
        raise SubcellError(f"{folder}: no objects.parquet or objects.csv")
    out = {}
    for name in table.column_names:
        values = table.column(name).to_numpy(zero_copy_only=False)
        out[name] = values.astype(str) if values.dtype == object else values
    if "class" not in out:
        out["class"] = np.full(table.num_rows, "", dtype=str)
    return out


def _condition(runs: list[dict], name: str, fractions: dict, sizes: dict) -> dict:
    """One condition's numbers (means over its images; sizes pooled over objects)."""
    summary = {
        "n_images": len(runs),
        "n_objects": int(sum(r["summary"].get("n_objects", 0) for r in runs)),
        "fraction_mean": {k: _stat(np.mean, v[name]) for k, v in fractions.items()},
        "fraction_sd": {k: _sd(v[name]) for k, v in fractions.items()},
        "size_mean": {k: _stat(np.mean, v[name]) for k, v in sizes.items()},
        "size_median": {k: _stat(np.median, v[name]) for k, v in sizes.items()},
    }
    minas = [r["summary"]["mina"] for r in runs if r["summary"].get("mina")]
    if minas:
        summary["mina"] = {
            key: _stat(np.mean, [m[key] for m in minas if m.get(key) is not None])
            for key in minas[0]
        }
    return summary


def _tests(conditions: list[str], fractions: dict, sizes: dict) -> dict:
    """Two-sided Mann–Whitney U p-values per class and pair of conditions."""
    from scipy.stats import mannwhitneyu

    tests: dict[str, dict] = {"fractions": {}, "sizes": {}}
    for what, data in (("fractions", fractions), ("sizes", sizes)):
        for klass, by in data.items():
            pairs = {}
            for a, b in itertools.combinations(conditions, 2):
                x, y = np.asarray(by[a], dtype=float), np.asarray(by[b], dtype=float)
                if x.size and y.size and np.ptp(np.concatenate([x, y])) > 0:
                    pairs[f"{a} vs {b}"] = float(mannwhitneyu(x, y).pvalue)
                else:
                    pairs[f"{a} vs {b}"] = None
            tests[what][klass] = pairs
    return tests


def _stat(function, values) -> float | None:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(function(v)) if v.size else None


def _sd(values) -> float | None:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.std(ddof=1)) if v.size > 1 else None
