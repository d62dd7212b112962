"""Nile Red: 15 compartments from one dye, scored against the issue's targets.

Runs a Nile Red pipeline (``configs/pipelines/nile-red.yaml``; ``--tiny``: its tiny
variant) through the ``subcell run`` engine — steps already done in the output folder are
reused, so a rerun only scores — and reads its evaluate steps' ``metrics.json``:

- **per compartment**, for the ten group networks' merged map (``eval-merged``), the
  multi-label network's map (``eval-multilabel``) and each group network on its own
  compartments (``eval-volume`` ... ``eval-lyso``, the paper's way): pixel accuracy
  (the compartment against everything else, (TP + TN) / voxels), F1, precision, recall
  and Manders' overlap, each compartment PASS or FAIL against the issue's targets — pixel
  accuracy >= 0.917 for all 15 (the paper's floor), Manders > 0.7 for ER, lipid droplets,
  cytosol, nucleus and ECS, > 0.5 for the rest. Compartments overlap (a mitochondrion is
  also cytosol), so the 15-compartment maps are scored one compartment mask at a time.
- **the ratio ablation**: F1 of early endosome and mitochondria with and without the
  red/yellow ratio image, beside the paper's (Fig. S4: EE 0.59 vs 0.43, mitochondria 0.63
  vs 0.62).
- **where it ran**: each train step's device (from its model card) and the torch device
  available here, and the wall time of every step (from its record).

``--model NAME|DIR --data DATA.zarr`` scores one 15-class model (a bundled one, or a
model folder such as a pipeline's ``train-multilabel/model``) on a simulated dataset's test
split instead — segment and evaluate, as the pipeline's multi-label steps — with the same
table and no training. ``--ablation-model DIR2`` adds the ratio ablation from a second
model, the same network trained on the intensity image alone
(``configs/nile_red/train-multilabel-cpu-intensity.yaml`` for ``train-multilabel-cpu.yaml``
at 20 epochs).

    .venv/bin/python benchmarks/nile_red.py [--tiny] [--out DIR] [--set STEP.KEY=VALUE]
                                            [--device cuda] [--workers N]
    .venv/bin/python benchmarks/nile_red.py --model DIR --data DATA.zarr [--device cuda]
                                            [--ablation-model DIR2]

Results: ``DIR/nile_red.json`` and ``DIR/nile_red.md`` (default ``DIR``:
``benchmarks/out/nile_red``, ``nile_red-tiny`` or ``nile_red-model``; the pipeline's step
folders are kept there for reuse). A target FAIL is a measurement, not an error: ``main``
returns 1 only when scores are missing or out of range.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from subcell.core.errors import SubcellError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
PIPELINE = ROOT / "configs" / "pipelines" / "nile-red.yaml"
TINY = ROOT / "configs" / "pipelines" / "tiny" / "nile-red.yaml"

#: The paper's floor: pixel accuracy of every compartment.
TARGET_ACCURACY = 0.917
#: Manders' overlap must exceed 0.7 for these, 0.5 for the other compartments.
MANDERS_HIGH = ("er", "lipid_droplet", "cytosol", "nucleus", "ecs")
MANDERS_HIGH_MIN, MANDERS_MIN = 0.7, 0.5
#: Zhanghao et al., Fig. S4: F1 with and without the ratio image.
PAPER_ABLATION = {"early_endosome": (0.59, 0.43), "mitochondria": (0.63, 0.62)}
#: Further compartments the model ablation (``--ablation-model``) reports: the small
#: organelles the paper's vesicle classes stand among.
ABLATION_MORE = ("late_endosome", "lysosome", "peroxisome", "lipid_droplet", "golgi")
#: Compartment -> (evaluate step with the ratio image, without it).
ABLATION_STEPS = {
    "early_endosome": ("eval-ee", "eval-ee-intensity"),
    "mitochondria": ("eval-mito", "eval-mito-intensity"),
}
#: Table name -> evaluate step of a 15-compartment map.
MAPS = {"merged": "eval-merged", "multilabel": "eval-multilabel"}
GROUP_STEPS = tuple(
    f"eval-{g}" for g in ("volume", "er", "pm", "golgi", "ld", "mito", "pero", "ee", "le", "lyso")
)
TITLES = {
    "merged": "ten group networks, merged map (eval-merged)",
    "multilabel": "multi-label network (eval-multilabel)",
    "networks": "each group network on its own compartments (eval-volume ... eval-lyso)",
    "model": "the given model",
}
SCORE_KEYS = ("pixel_accuracy", "f1", "precision", "recall", "manders")
#: What the model-mode report takes from a model card's training record.
TRAINING_KEYS = ("device", "seconds", "epochs_run")


# --------------------------------------------------------------------------- scoring


def targets(classes) -> dict[str, dict[str, float]]:
    """Compartment -> its targets: ``pixel_accuracy`` (at least) and ``manders`` (above)."""
    return {
        name: {
            "pixel_accuracy": TARGET_ACCURACY,
            "manders": MANDERS_HIGH_MIN if name in MANDERS_HIGH else MANDERS_MIN,
        }
        for name in classes
    }


def class_accuracy(metrics: dict, name: str) -> float | None:
    """Pixel accuracy of one class against everything else, (TP + TN) / voxels: as
    ``metrics.json`` gives it (``per_class``), else from its confusion matrix."""
    per = metrics["per_class"][name]
    if "pixel_accuracy" in per:
        return per["pixel_accuracy"]
    names = metrics["confusion"]["classes"]
    cm = np.asarray(metrics["confusion"]["matrix"], dtype=np.float64)
    k, total = names.index(name), cm.sum()
    wrong = cm[k].sum() + cm[:, k].sum() - 2 * cm[k, k]  # FN + FP
    return float(1.0 - wrong / total) if total else None


def compartment_scores(metrics: dict) -> dict[str, dict]:
    """Per foreground class of an evaluate ``metrics.json``: pixel accuracy (the class
    against everything else), F1, precision, recall, Manders' overlap and pixel counts."""
    rows = {}
    for name, per in metrics["per_class"].items():
        if name == "background":
            continue
        rows[name] = {
            "pixel_accuracy": class_accuracy(metrics, name),
            "f1": per["f1"],
            "precision": per["precision"],
            "recall": per["recall"],
            "manders": per["moc"],
            "n_true_px": per["n_true_px"],
            "n_predicted_px": per["n_predicted_px"],
        }
    return rows


def check(row: dict, target: dict) -> dict:
    """PASS/FAIL of one compartment: ``pixel_accuracy`` and ``manders`` (True, False, or
    None where the score is undefined: the compartment in neither truth nor prediction),
    and ``pass`` (both True)."""
    acc, manders = row.get("pixel_accuracy"), row.get("manders")
    checks = {
        "pixel_accuracy": None if acc is None else acc >= target["pixel_accuracy"],
        "manders": None if manders is None else manders > target["manders"],
    }
    return checks | {"pass": all(v is True for v in checks.values())}


def score_table(rows: dict[str, dict], classes) -> dict:
    """Compartment rows (in ``classes`` order) with their checks, and how many passed."""
    goals = targets(classes)
    table = {}
    for name in classes:
        row = rows.get(name)
        table[name] = None if row is None else row | {"checks": check(row, goals[name])}
    passed = sum(1 for r in table.values() if r is not None and r["checks"]["pass"])
    return {"compartments": table, "passed": passed, "total": len(classes)}


def ablation(metrics: dict[str, dict]) -> dict[str, dict]:
    """F1 with and without the ratio image per ablated compartment, beside the paper's."""
    result = {}
    for name, (with_step, without_step) in ABLATION_STEPS.items():
        f1 = [_f1(metrics.get(step, {}), name) for step in (with_step, without_step)]
        result[name] = _ablation_row(name, *f1) | {"steps": [with_step, without_step]}
    return result


def model_ablation(with_ratio: dict, intensity_only: dict) -> dict[str, dict]:
    """The ablation from two 15-class models' metrics: every compartment the paper ablated,
    then the other small organelles (vesicles and the like, where the ratio should matter)."""
    names = list(PAPER_ABLATION) + [n for n in ABLATION_MORE if n not in PAPER_ABLATION]
    return {n: _ablation_row(n, _f1(with_ratio, n), _f1(intensity_only, n)) for n in names}


def _f1(metrics: dict, name: str) -> float | None:
    return metrics.get("per_class", {}).get(name, {}).get("f1")


def _ablation_row(name: str, with_ratio: float | None, intensity_only: float | None) -> dict:
    paper = PAPER_ABLATION.get(name, (None, None))
    return {
        "f1_with_ratio": with_ratio,
        "f1_intensity_only": intensity_only,
        "gain": None if None in (with_ratio, intensity_only) else with_ratio - intensity_only,
        "paper_with_ratio": paper[0],
        "paper_intensity_only": paper[1],
    }


def problems_of(sources: dict[str, dict]) -> list[str]:
    """Scores that cannot be right: missing compartments, values outside [0, 1]."""
    bad = []
    for source, table in sources.items():
        for name, row in table["compartments"].items():
            if row is None:
                bad.append(f"{source}/{name}: no scores")
                continue
            for key in SCORE_KEYS:
                value = row[key]
                if value is not None and not 0.0 <= value <= 1.0:
                    bad.append(f"{source}/{name}: {key} = {value}")
    return bad


# --------------------------------------------------------------------------- formatting


def _fmt(value) -> str:
    return "  —  " if value is None else f"{value:.3f}"


def _verdict(checks: dict) -> str:
    if checks["pass"]:
        return "PASS"
    undefined = [k for k, v in checks.items() if v is None]
    return "FAIL (undefined)" if undefined else "FAIL"


def format_source(name: str, table: dict) -> list[list[str]]:
    """Rows of one compartment table (header first)."""
    head = ["compartment", "pixel acc.", "F1", "precision", "recall", "Manders", "targets", ""]
    lines = [head]
    goals = targets(table["compartments"])
    for compartment, row in table["compartments"].items():
        goal = f">= {goals[compartment]['pixel_accuracy']}, > {goals[compartment]['manders']}"
        if row is None:
            lines.append([compartment, *["—"] * 5, goal, "no scores"])
            continue
        cells = [_fmt(row[k]) for k in SCORE_KEYS]
        lines.append([compartment, *cells, goal, _verdict(row["checks"])])
    return lines


def _text_table(lines: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in lines) for i in range(len(lines[0]))]
    cells = (zip(row, widths, strict=True) for row in lines)
    return "\n".join("  ".join(c.ljust(w) for c, w in row).rstrip() for row in cells)


def _markdown_table(lines: list[list[str]]) -> str:
    text = ["| " + " | ".join(lines[0]) + " |", "|" + "---|" * len(lines[0])]
    return "\n".join(text + ["| " + " | ".join(r) + " |" for r in lines[1:]])


def _ablation_lines(rows: dict) -> list[list[str]]:
    lines = [["compartment", "F1 ratio", "F1 intensity", "gain", "paper ratio", "paper int."]]
    for name, r in rows.items():
        lines.append(
            [name, _fmt(r["f1_with_ratio"]), _fmt(r["f1_intensity_only"]), _fmt(r["gain"])]
            + [_paper(r["paper_with_ratio"]), _paper(r["paper_intensity_only"])]
        )
    return lines


def _paper(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _run_lines(result: dict) -> list[list[str]]:
    lines = [["step", "seconds", "ran now", "device"]]
    training = result.get("training", {}).get("steps", {})
    for step, info in result.get("steps", {}).items():
        device = (training.get(step) or {}).get("device") or info.get("device") or ""
        ran = "yes" if info["ran"] else "reused"
        lines.append([step, f"{info['seconds']:.1f}", ran, device])
    return lines


def report(result: dict, markdown: bool = False) -> str:
    """The results as text (``markdown``: as a Markdown page)."""
    table = _markdown_table if markdown else _text_table
    out = ["# Nile Red benchmark", ""] if markdown else []
    out += [f"{'**' if markdown else ''}{result['what']}{'**' if markdown else ''}", ""]
    for name, source in result["sources"].items():
        title = f"{TITLES.get(name, name)}: {source['passed']} of {source['total']} pass"
        out += [f"## {title}" if markdown else title, "", table(format_source(name, source)), ""]
    if result.get("ablation"):
        title = "Ratio ablation (F1; the paper: Fig. S4)"
        rows = table(_ablation_lines(result["ablation"]))
        out += [f"## {title}" if markdown else title, "", rows, ""]
    training = result.get("training", {})
    title = f"Where it ran (torch device here: {training.get('available', '?')})"
    out += [f"## {title}" if markdown else title, ""]
    if result.get("steps"):
        out += [table(_run_lines(result)), ""]
    for problem in result.get("problems", []):
        out.append(f"PROBLEM: {problem}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- running


def _available_device() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return "cpu"


def _load(path: Path, overrides: list[str], out: Path, device: str | None, registry):
    from subcell.pipeline.run import load_pipeline

    pipeline = load_pipeline(path, overrides, out=out, registry=registry)
    if not device:
        return pipeline
    kinds = ("train", "segment")
    placed = [f"{n}.device={device}" for n, s in pipeline.steps.items() if s.kind in kinds]
    return load_pipeline(path, [*placed, *overrides], out=out, registry=registry)


def _output(pipeline, record: dict, key: str) -> Path:
    return pipeline.folder(record["name"]) / record["outputs"][key]["path"]


def run_pipeline_mode(path: Path, overrides: list[str], out: Path, device, workers: int) -> dict:
    """Run (or reuse) the pipeline and gather its scores, ablation, devices and times."""
    from subcell.models import read_card
    from subcell.pipeline.run import run_pipeline
    from subcell.plugins.nile_red.compartments import CLASS_NAMES
    from subcell.registry import get_registry

    registry = get_registry()
    pipeline = _load(path, overrides, out, device, registry)
    result = run_pipeline(pipeline, workers=workers, registry=registry)
    metrics = {
        name: json.loads(_output(pipeline, rec, "metrics").read_text())
        for name, rec in result.records.items()
        if rec["step"] == "evaluate"
    }
    sources = {
        name: score_table(compartment_scores(metrics[step]), CLASS_NAMES)
        for name, step in MAPS.items()
        if step in metrics
    }
    own = {}
    for step in GROUP_STEPS:
        own |= compartment_scores(metrics[step]) if step in metrics else {}
    if own:
        sources["networks"] = score_table(own, CLASS_NAMES)
    training = {}
    for name, rec in result.records.items():
        if rec["step"] == "train":
            card = read_card(_output(pipeline, rec, "model")).get("training") or {}
            training[name] = {k: card.get(k) for k in ("device", "seconds", "epochs_run")}
    steps = {
        name: {
            "seconds": float(rec.get("seconds") or 0.0),
            "ran": name in result.seconds,
            "device": (rec.get("options") or {}).get("device"),  # segment steps
        }
        for name, rec in result.records.items()
    }
    return {
        "mode": "pipeline",
        "what": f"pipeline {path} (step folders in {out})",
        "sources": sources,
        "ablation": ablation(metrics),
        "training": {"available": _available_device(), "steps": training},
        "steps": steps,
    }


def run_model_mode(
    model: str, data: Path, out: Path, device, ablation_model: str | None = None
) -> dict:
    """Score one 15-class model on a dataset's test split: segment, then evaluate (as the
    pipeline's ``seg-multilabel`` and ``eval-multilabel`` steps); with ``ablation_model``
    (the same network trained on the intensity image alone) also the ratio ablation."""
    from subcell import models
    from subcell.plugins.nile_red.compartments import CLASS_NAMES

    cards = {model: models.read_card(models.resolve(model))}
    if ablation_model:
        cards[ablation_model] = models.read_card(models.resolve(ablation_model))
        _check_ablation_pair(model, ablation_model, cards)  # before minutes of segmenting
    times: dict[str, float] = {}
    metrics = _score_model(model, data, out, device, times)
    result = {
        "mode": "model",
        "what": f"model {model} on the test split of {data} ({metrics['n_images']} images)",
        "sources": {"model": score_table(compartment_scores(metrics), CLASS_NAMES)},
        "ablation": {},
    }
    if ablation_model:
        without = _score_model(ablation_model, data, out / "intensity-only", device, times)
        result["ablation"] = model_ablation(metrics, without)
        result["what"] += f"; ratio ablation against {ablation_model} (intensity only)"
    trained = {
        f"training ({name})": {k: (c.get("training") or {}).get(k) for k in TRAINING_KEYS}
        for name, c in cards.items()
    }
    result["training"] = {"available": _available_device(), "steps": trained}
    result["steps"] = {
        step: {"seconds": info["seconds"] or 0.0, "ran": False} for step, info in trained.items()
    } | {step: {"seconds": seconds, "ran": True} for step, seconds in times.items()}
    return result


def _score_model(model: str, data: Path, out: Path, device, times: dict) -> dict:
    """Segment a dataset's test split with ``model`` into ``out`` and evaluate it; the
    seconds of both go into ``times``."""
    import time

    from subcell import models
    from subcell.pipeline.evaluate import evaluate, write_metrics
    from subcell.pipeline.segment_dataset import segment_dataset

    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    segmented = segment_dataset(
        data, models.resolve(model), out / "prediction.zarr", split="test", device=device or "cpu"
    )
    times[f"segment ({model})"] = time.perf_counter() - start
    start = time.perf_counter()
    metrics = evaluate(segmented, data, split="test")
    write_metrics(metrics, out / "metrics.json")
    times[f"evaluate ({model})"] = time.perf_counter() - start
    return metrics


def _check_ablation_pair(model: str, ablation_model: str, cards: dict[str, dict]) -> None:
    """The ablation compares like with like: the ratio model against the same classes seen
    through the intensity image alone."""
    card, other = cards[model], cards[ablation_model]
    transforms = [(c.get("input") or {}).get("transform") for c in (card, other)]
    if transforms != ["intensity_ratio", "intensity"]:
        raise SubcellError(
            f"the ratio ablation needs {model} on intensity + ratio and {ablation_model} on "
            f"intensity alone; their inputs are {transforms[0]} and {transforms[1]}"
        )
    if list(card["classes"]) != list(other["classes"]):
        raise SubcellError(f"{model} and {ablation_model} predict different classes")
    data = [
        ((c.get("data") or {}).get("provenance") or {}).get("config_sha256") for c in (card, other)
    ]
    if None not in data and data[0] != data[1]:
        raise SubcellError(
            f"{model} and {ablation_model} were trained on differently simulated data "
            f"(config {data[0][:12]} and {data[1][:12]}); the ablation needs the same cells"
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, help=f"pipeline file (default {PIPELINE.name})")
    parser.add_argument("--tiny", action="store_true", help="the tiny pipeline (CPU, minutes)")
    parser.add_argument("--quick", action="store_true", help="same as --tiny")
    parser.add_argument("--out", type=Path, help="step folders and results")
    parser.add_argument(
        "--set", action="append", default=[], metavar="STEP.KEY=VALUE", help="pipeline override"
    )
    parser.add_argument("--device", help="device of the train and segment steps (cuda, cpu)")
    parser.add_argument("--workers", type=int, default=1, help="steps run at once")
    parser.add_argument("--model", help="score this 15-class model (bundled name or folder)")
    parser.add_argument("--data", type=Path, help="with --model: a simulated Nile Red dataset")
    parser.add_argument(
        "--ablation-model",
        help="with --model: the same network trained on intensity alone (the ratio ablation)",
    )
    return parser


def main(argv: list[str] | None = None, quick: bool = False) -> int:
    """Run the benchmark (``argv`` as on the command line; ``quick`` as ``--tiny``)."""
    args = _parser().parse_args([] if argv is None else argv)
    tiny = quick or args.tiny or args.quick
    if bool(args.model) != bool(args.data):
        print("--model and --data go together", file=sys.stderr)
        return 2
    if args.ablation_model and not args.model:
        print("--ablation-model goes with --model and --data", file=sys.stderr)
        return 2
    try:
        if args.model:
            out = args.out or OUT / "nile_red-model"
            result = run_model_mode(args.model, args.data, out, args.device, args.ablation_model)
        else:
            path = args.pipeline or (TINY if tiny else PIPELINE)
            out = args.out or OUT / ("nile_red-tiny" if tiny else "nile_red")
            result = run_pipeline_mode(path, args.set, out, args.device, args.workers)
    except SubcellError as exc:  # a user error: one line, as the CLI prints it
        print(f"nile_red: {exc}", file=sys.stderr)
        return 2
    result["problems"] = problems_of(result["sources"])
    result["targets"] = targets(next(iter(result["sources"].values()))["compartments"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "nile_red.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "nile_red.md").write_text(report(result, markdown=True))
    print(report(result))
    print(f"results: {out / 'nile_red.json'}, {out / 'nile_red.md'}")
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
