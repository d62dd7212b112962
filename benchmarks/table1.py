"""Table 1 of Sekh et al. 2021 on our simulated test splits: baselines and our models.

For the mitochondria (SimEpi1Mito-like, ``configs/sim/epi1-mito.yaml``) and vesicles
(SimEpi1Vesi-like, ``configs/sim/epi1-vesicles.yaml``) test splits, every test image is
segmented with the classical ``segmenter`` plugins ``otsu``, ``adaptive``, ``backprop`` and
``morphological`` and with our bundled model (``mitochondria-epi`` / ``vesicles-epi``, or any
model directory), through ``subcell.pipeline.segment.run_segment`` as ``subcell segment``
does. Each method is scored by the **pooled confusion matrix** of the split (the sum over its
images, :func:`subcell.core.metrics.pooled_semantic_scores`): mIoU is the mean IoU over the
classes *including background* (the paper's definition), F1 is that of the foreground. The
table puts them beside the paper's Table 1 and checks the issue's targets for our models
(mitochondria >= 0.92 mIoU / 0.94 F1, vesicles >= 0.89 / 0.91, the paper's own numbers).
Baselines run with their plugin defaults; one extra row, ``otsu:smooth_sigma_px=1``, is Otsu
after a 1-pixel Gaussian blur (the usual OpenCV recipe; the paper used OpenCV 3.4 and does
not say whether it blurred). ``--methods`` takes ``NAME`` or ``NAME:key=value[:...]``.

Data: ``--mito-data`` / ``--vesicles-data`` name existing datasets (``subcell simulate``);
otherwise each is simulated from its config into ``benchmarks/out/`` with ``--n-images``
images (default 500, 256 x 256 montages as in the configs; 20 % of them are the test split)
with the config's seed plus 1000 (the configs' own seeds would remake the images the bundled
models were trained on), and deleted afterwards unless ``--keep-data``. A dataset with the
seed of the model's training data but another config or size is flagged (``leakage_risk``).
``backprop`` (Kanezaki 2018) takes seconds per image, so it is scored on the first
``--backprop-max-images`` test images only (default 40; the table says so, and gives every
method's mIoU on that subset too). A bundled model that is not installed is reported as
missing and skipped.

    .venv/bin/python benchmarks/table1.py [--n-images N] [--mito-data D.zarr] ...
    .venv/bin/python benchmarks/run.py table1 [--quick]

Results go to ``benchmarks/out/table1.json`` (``--json``). A target MISS is a measurement,
not a failure: ``main`` returns 1 only when a method fails or gives an out-of-range score.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from subcell.core.metrics import class_index_map, confusion_matrix, pooled_semantic_scores
from subcell.core.model import Volume
from subcell.models import bundled_names
from subcell.pipeline.dataset import Dataset, open_dataset

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
BASELINES = ("otsu", "adaptive", "backprop", "morphological")
#: Also run by default: Otsu after a 1-pixel Gaussian blur, the usual OpenCV recipe (the
#: paper used OpenCV 3.4 and does not say whether it blurred first).
EXTRA = ("otsu:smooth_sigma_px=1",)

#: Sekh et al. 2021, Table 1 (mIoU, F1) on the simulated test sets; "unet" is their
#: simulation-supervised U-Net + EfficientNet-B3, "morphological" the MorphoLibJ plugin.
PAPER = {
    "mitochondria": {
        "unet": (0.92, 0.94),
        "otsu": (0.82, 0.79),
        "adaptive": (0.56, 0.51),
        "backprop": (0.68, 0.67),
        "morphological": (0.76, 0.81),
    },
    "vesicles": {
        "unet": (0.89, 0.91),
        "otsu": (0.70, 0.72),
        "adaptive": (0.51, 0.57),
        "backprop": (0.55, 0.58),
        "morphological": (0.66, 0.67),
    },
}
TASKS = {
    "mitochondria": {
        "paper_dataset": "SimEpi1Mito",
        "config": ROOT / "configs" / "sim" / "epi1-mito.yaml",
        "model": "mitochondria-epi",
        "target": (0.92, 0.94),
    },
    "vesicles": {
        "paper_dataset": "SimEpi1Vesi",
        "config": ROOT / "configs" / "sim" / "epi1-vesicles.yaml",
        "model": "vesicles-epi",
        "target": (0.89, 0.91),
    },
}
N_IMAGES, N_IMAGES_QUICK = 500, 10
BACKPROP_MAX, BACKPROP_MAX_QUICK = 40, 1
#: Appended to a model's name for its row with test-time augmentation.
TTA_SUFFIX = "+tta"
#: Added to a config's seed when simulating test data (see :func:`simulate_dataset`).
SEED_OFFSET = 1000


# --------------------------------------------------------------------------- data


def simulate_dataset(
    config: str | Path,
    out: str | Path,
    n_images: int,
    workers: int = 2,
    seed_offset: int = SEED_OFFSET,
) -> Path:
    """Simulate ``n_images`` images of a simulate config into ``out`` (as ``subcell simulate
    CONFIG --out OUT --n N --set seed=S``) with the config's seed plus ``seed_offset``.

    Image ``i`` of a dataset depends only on the seed and ``i``, so the config's own seed would
    remake the images the bundled models were trained on (``make models`` simulates these
    configs); the offset gives unseen images. An existing dataset of the same config, seed
    and size is reused.
    """
    from subcell.pipeline.config import load_config
    from subcell.pipeline.dataset import write_dataset

    seed = load_config(config).config.seed + int(seed_offset)
    loaded = load_config(config, [f"n_tiles={int(n_images)}", f"seed={seed}"])
    return write_dataset(loaded.config, out, workers=workers, progress=False).path


def image_volume(dataset: Dataset, index: int) -> Volume:
    """Image ``index`` of a single-frame dataset as a ``CZYX`` volume with its voxel size."""
    data = np.asarray(dataset.images[index], dtype=np.float32)
    return Volume(data, dataset.voxel_nm, channel_names=dataset.channel_names)


def truth_map(dataset: Dataset, index: int) -> np.ndarray:
    """The class-index map (Z, Y, X) of image ``index``'s ground-truth masks."""
    return class_index_map(np.asarray(dataset.masks[index]))


def aligned_classes(method_classes, dataset_classes) -> list[int | None] | None:
    """For each method class, the dataset class (0-based) it is scored as; None if the
    classes cannot be matched by name and the scoring must be binary (any foreground).

    A single-class method (a baseline's ``foreground``) against a single-class dataset is
    scored as that class.
    """
    method_classes, dataset_classes = list(method_classes), list(dataset_classes)
    if len(method_classes) == 1 and len(dataset_classes) == 1:
        return [0]
    if any(name in dataset_classes for name in method_classes):
        return [dataset_classes.index(n) if n in dataset_classes else None for n in method_classes]
    return None


def prediction_map(semantic: np.ndarray, mapping: list[int | None] | None, n_classes: int):
    """The class-index map of predicted masks (K, Z, Y, X) in the dataset's class order
    (``mapping`` from :func:`aligned_classes`; None: 1 wherever any class is set)."""
    semantic = np.asarray(semantic)
    if mapping is None:
        return (semantic != 0).any(axis=0).astype(np.uint8)
    channels = np.zeros((n_classes, *semantic.shape[1:]), dtype=np.uint8)
    for k, target in enumerate(mapping):
        if target is not None:
            channels[target] |= semantic[k] != 0
    return class_index_map(channels)


# --------------------------------------------------------------------------- scoring


def resolve_spec(spec, *, device: str | None = None, registry=None):
    """A method from ``spec``: ``NAME`` (model directory, bundled model or segmenter) or
    ``SEGMENTER:key=value[:key=value...]`` (a segmenter with those config values)."""
    from subcell.pipeline.segment import Method, resolve_method
    from subcell.registry import get_registry

    if not isinstance(spec, str) or ":" not in spec or Path(spec).exists():
        return resolve_method(spec, device=device, registry=registry)
    name, *pairs = spec.split(":")
    registry = registry or get_registry()
    values = dict(pair.split("=", 1) for pair in pairs)
    config = registry.config_class("segmenter", name)(**values)
    return Method("segmenter", spec, segmenter=registry.create("segmenter", name, config))


def score_method(
    dataset: Dataset,
    method,
    indices: list[int],
    *,
    device: str | None = None,
    registry=None,
    tta: bool = False,
) -> dict:
    """Segment images ``indices`` of ``dataset`` with ``method`` and score the pooled result.

    Parameters
    ----------
    dataset
        An opened simulated dataset.
    method
        A segmenter plugin name (with config values, see :func:`resolve_spec`), a model
        directory, a bundled model name, or a resolved
        :class:`subcell.pipeline.segment.Method` (resolve a model once to time inference only).
    indices
        The images to score (e.g. ``dataset.split("test")``).
    device
        Torch device for learned models.
    registry
        Plugin registry; the process-wide one if None.
    tta
        Test-time augmentation (learned models; ``subcell segment --tta``).

    Returns
    -------
    dict
        ``method``, ``kind``, ``miou`` (pooled, background included), ``f1`` (foreground),
        ``scoring`` (``"per-class"`` or ``"binary"``), ``n_images``, ``indices``,
        ``seconds_per_image`` (mean segmentation wall time after an untimed warm-up on a
        64 x 64 corner), ``seconds``, ``scores`` (all of
        :func:`~subcell.core.metrics.pooled_semantic_scores`) and ``confusions`` (one matrix
        per image, as nested lists).
    """
    from subcell.pipeline.segment import run_segment

    resolved = resolve_spec(method, device=device, registry=registry)
    classes = list(dataset.class_names)
    if indices:
        _warm_up(dataset, indices[0], resolved, device, registry, tta)
    confusions, seconds = [], []
    mapping: list[int | None] | None = None
    for n, index in enumerate(indices):
        volume = image_volume(dataset, index)
        start = time.perf_counter()
        masks = run_segment(volume, resolved, device=device, registry=registry, tta=tta).masks
        seconds.append(time.perf_counter() - start)
        if n == 0:
            mapping = aligned_classes(masks.class_names, classes)
        confusions.append(_confusion(truth_map(dataset, index), masks.semantic, mapping, classes))
    names = ["background", *classes] if mapping is not None else ["background", "foreground"]
    scores = pooled_semantic_scores(confusions, names)
    return {
        "method": resolved.name + (TTA_SUFFIX if tta else ""),
        "kind": resolved.kind,
        "miou": scores["miou"],
        "f1": scores["f1"],
        "scoring": "per-class" if mapping is not None else "binary",
        "n_images": len(indices),
        "indices": [int(i) for i in indices],
        "seconds_per_image": float(np.mean(seconds)) if seconds else None,
        "seconds": float(np.sum(seconds)),
        "scores": scores,
        "confusions": [c.tolist() for c in confusions],
    }


def _warm_up(dataset: Dataset, index: int, method, device, registry, tta=False) -> None:
    """One untimed run on a 64 x 64 corner: lazy imports and first-call allocations."""
    from subcell.pipeline.segment import run_segment

    first = image_volume(dataset, index)
    corner = Volume(first.data[..., :64, :64], first.voxel_nm, channel_names=first.channel_names)
    run_segment(corner, method, device=device, registry=registry, tta=tta)


def _confusion(truth: np.ndarray, semantic: np.ndarray, mapping, classes) -> np.ndarray:
    """The confusion matrix of one image, per class or (``mapping`` None) binary."""
    if mapping is None:
        truth, n_classes = (truth > 0).astype(np.uint8), 2
    else:
        n_classes = len(classes) + 1
    return confusion_matrix(truth, prediction_map(semantic, mapping, len(classes)), n_classes)


def subset_miou(record: dict, indices: list[int]) -> float | None:
    """A method's pooled mIoU over the images ``indices`` (a subset of those it scored)."""
    where = {i: n for n, i in enumerate(record["indices"])}
    picked = [np.asarray(record["confusions"][where[i]]) for i in indices if i in where]
    if not picked:
        return None
    names = record["scores"]["confusion"]["classes"]
    return pooled_semantic_scores(picked, names)["miou"]


def overlaps_training(card: dict, dataset: Dataset) -> bool:
    """Whether ``dataset`` may share images with the model's training split: the same seed
    as its training data but not the same dataset (whose test split the model never saw)."""
    trained_on = (card.get("data") or {}).get("provenance") or {}
    if "seed" not in trained_on or trained_on.get("seed") != dataset.attrs.get("seed"):
        return False
    return trained_on.get("config_sha256") != dataset.attrs.get("config_sha256")


def model_status(name_or_dir: str) -> tuple[bool, str]:
    """Whether a model name or directory is available, and a note for the table."""
    path = Path(name_or_dir)
    if path.is_dir() and (path / "card.json").is_file():
        card = json.loads((path / "card.json").read_text())
    elif name_or_dir in bundled_names():
        from subcell.models import resolve

        card = json.loads((resolve(name_or_dir) / "card.json").read_text())
    else:
        installed = ", ".join(bundled_names()) or "none"
        return False, f"model {name_or_dir!r} is not installed (bundled: {installed}): skipped"
    training = card.get("training") or {}
    note = f"{card.get('network', {}).get('plugin', '?')} network"
    if training:
        note += f", {training.get('epochs_run', '?')} epochs"
        if not training.get("complete"):
            note += ", TRAINING NOT COMPLETE"
    return True, note


# --------------------------------------------------------------------------- one task


def run_task(
    task: str,
    data: str | Path,
    *,
    model: str | None,
    methods: tuple[str, ...] = BASELINES + EXTRA,
    backprop_max_images: int = BACKPROP_MAX,
    device: str | None = None,
    tta: bool = True,
) -> dict:
    """Score the baselines and a model on the test split of ``data``; a JSON-ready dict.

    Keys: ``task``, ``paper_dataset``, ``data`` (path, images, test images, pixel size,
    classes), ``methods`` (name -> :func:`score_method` record plus ``paper`` (mIoU, F1)),
    ``model`` (the model's method name or None), ``model_note``, ``leakage_risk`` (see
    :func:`overlaps_training`; None without a model), ``backprop_subset``
    (the test images ``backprop`` saw and every method's mIoU on them), ``target`` and
    ``target_met`` (None without a model); with ``tta``, the model is also scored with
    test-time augmentation (method ``NAME+tta``, ``target_met_tta``).
    """
    spec, paper = TASKS[task], PAPER[task]
    dataset = open_dataset(data)
    test = dataset.split("test")
    result = {
        "task": task,
        "paper_dataset": spec["paper_dataset"],
        "data": _data_info(dataset, data),
        "methods": {},
        "model": None,
        "model_note": None,
        "target": {"miou": spec["target"][0], "f1": spec["target"][1]},
        "target_met": None,
        "target_met_tta": None,
        "leakage_risk": None,
    }
    subset = test[:backprop_max_images]
    for name in methods:
        indices = subset if name.split(":")[0] == "backprop" else test
        print(f"  {task}: {name} on {len(indices)} images ...", flush=True)
        record = score_method(dataset, name, indices)
        record["paper"] = list(paper.get(name.split(":")[0], (None, None)))
        result["methods"][name] = record
    if model is not None:
        _score_model(result, dataset, model, device, tta)
    result["backprop_subset"] = {
        "indices": [int(i) for i in subset],
        "miou": {name: subset_miou(r, subset) for name, r in result["methods"].items()},
    }
    return result


def _data_info(dataset: Dataset, data) -> dict:
    return {
        "path": str(Path(data).resolve()),
        "n_images": len(dataset),
        "n_test": len(dataset.split("test")),
        "image_shape": list(dataset.images.shape[1:]),
        "voxel_nm": list(dataset.voxel_nm),
        "classes": list(dataset.class_names),
    }


def _score_model(result: dict, dataset: Dataset, model: str, device: str | None, tta: bool) -> None:
    """Score ``model`` on the test split into ``result`` (a note only when it is missing),
    plainly and, with ``tta``, with test-time augmentation."""
    from subcell.pipeline.segment import resolve_method

    found, result["model_note"] = model_status(model)
    if not found:
        return
    task, test = result["task"], dataset.split("test")
    resolved = resolve_method(model, device=device)
    result["leakage_risk"] = overlaps_training(resolved.model.card, dataset)
    if result["leakage_risk"]:
        result["model_note"] += (
            "; WARNING: this dataset has the seed of the model's training data but another "
            "config or size, so its test images may be training images"
        )
    target = TASKS[task]["target"]
    result["model"] = resolved.name
    for augmented in (False, True) if tta else (False,):
        label = "with test-time augmentation " if augmented else ""
        print(f"  {task}: {resolved.name} {label}on {len(test)} images ...", flush=True)
        record = score_method(dataset, resolved, test, device=device, tta=augmented)
        record["paper"] = list(PAPER[task]["unet"])
        result["methods"][record["method"]] = record
        miou, f1 = record["miou"] or 0.0, record["f1"] or 0.0
        met = bool(miou >= target[0] and f1 >= target[1])
        result["target_met_tta" if augmented else "target_met"] = met


# --------------------------------------------------------------------------- report


def _pair(miou, f1) -> str:
    if miou is None:
        return "n/a"
    return f"{miou:.2f}/{f1:.2f}"


def format_task(result: dict) -> str:
    """The table of one task: ours and the paper's mIoU/F1, time per image, images scored."""
    data = result["data"]
    shape = " x ".join(str(s) for s in data["image_shape"][-2:])
    lines = [
        f"{result['paper_dataset']}-like test split: {data['n_test']} of {data['n_images']} "
        f"images, {shape} px, {data['voxel_nm'][-1]:g} nm pixels ({data['path']})",
        f"  {'method':<28} {'mIoU':>6} {'F1':>6}   {'paper mIoU/F1':>13} {'ms/image':>9} "
        f"{'images':>7}",
    ]
    for name, r in result["methods"].items():
        ours = result["model"] is not None and name in (
            result["model"],
            result["model"] + TTA_SUFFIX,
        )
        label = f"{name} (ours)" if ours else name
        paper = _pair(*r["paper"]) if r["paper"][0] is not None else "n/a"
        miou = f"{r['miou']:.4f}" if r["miou"] is not None else "n/a"
        f1 = f"{r['f1']:.4f}" if r["f1"] is not None else "n/a"
        lines.append(
            f"  {label:<28} {miou:>6} {f1:>6}   {paper:>13} "
            f"{1000 * (r['seconds_per_image'] or 0):>9.1f} {r['n_images']:>7}"
        )
    if "backprop" in result["methods"]:
        n = len(result["backprop_subset"]["indices"])
        ratios = ", ".join(
            f"{k} {v:.3f}" for k, v in result["backprop_subset"]["miou"].items() if v is not None
        )
        lines.append(
            f"  backprop saw the first {n} test images (--backprop-max-images); "
            f"mIoU there: {ratios}"
        )
    if result["model_note"]:
        lines.append(f"  model: {result['model_note']}")
    target = result["target"]
    if result["target_met"] is not None:
        verdict = "PASS" if result["target_met"] else "MISS"
        r = result["methods"][result["model"]]
        lines.append(
            f"  target mIoU >= {target['miou']:.2f} and F1 >= {target['f1']:.2f}: {verdict} "
            f"(ours {r['miou']:.4f} / {r['f1']:.4f})"
        )
        if result.get("target_met_tta") is not None:
            r = result["methods"][result["model"] + TTA_SUFFIX]
            verdict = "PASS" if result["target_met_tta"] else "MISS"
            lines.append(
                f"  the same with test-time augmentation: {verdict} "
                f"(ours {r['miou']:.4f} / {r['f1']:.4f})"
            )
    else:
        lines.append(f"  target mIoU >= {target['miou']:.2f} / F1 >= {target['f1']:.2f}: no model")
    return "\n".join(lines)


def problems_of(result: dict) -> list[str]:
    """Scores that cannot be right: outside [0, 1] or missing."""
    bad = []
    for name, r in result["methods"].items():
        for key in ("miou", "f1"):
            value = r[key]
            if value is None or not 0.0 <= value <= 1.0:
                bad.append(f"{result['task']}/{name}: {key} = {value}")
    return bad


# --------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mito-data", help="mitochondria dataset (default: simulate)")
    parser.add_argument("--vesicles-data", help="vesicles dataset (default: simulate)")
    parser.add_argument("--n-images", type=int, help=f"images to simulate (default {N_IMAGES})")
    parser.add_argument("--mito-model", default=TASKS["mitochondria"]["model"])
    parser.add_argument("--vesicles-model", default=TASKS["vesicles"]["model"])
    parser.add_argument(
        "--backprop-max-images",
        type=int,
        help=f"test images backprop segments (default {BACKPROP_MAX})",
    )
    parser.add_argument(
        "--methods",
        default=",".join(BASELINES + EXTRA),
        help="comma-separated segmenters, NAME or NAME:key=value (default: %(default)s)",
    )
    parser.add_argument("--only", choices=sorted(TASKS), help="one task only")
    parser.add_argument("--device", default=None, help="torch device of the models (cpu)")
    parser.add_argument("--workers", type=int, default=2, help="simulation processes")
    parser.add_argument("--keep-data", action="store_true", help="keep simulated datasets")
    parser.add_argument("--json", default=str(OUT / "table1.json"), help="results file")
    parser.add_argument("--quick", action="store_true", help="tiny datasets: a smoke test")
    parser.add_argument(
        "--no-tta",
        action="store_true",
        help="skip the models' second run with test-time augmentation (8 views)",
    )
    return parser


def main(argv: list[str] | None = None, quick: bool = False) -> int:
    """Run the benchmark (``argv`` as on the command line; ``quick`` as ``--quick``)."""
    args = _parser().parse_args([] if argv is None else argv)
    quick = quick or args.quick
    n_images = args.n_images or (N_IMAGES_QUICK if quick else N_IMAGES)
    backprop_max = args.backprop_max_images
    if backprop_max is None:
        backprop_max = BACKPROP_MAX_QUICK if quick else BACKPROP_MAX
    methods = tuple(m for m in args.methods.split(",") if m)
    given = {"mitochondria": args.mito_data, "vesicles": args.vesicles_data}
    models = {"mitochondria": args.mito_model, "vesicles": args.vesicles_model}
    load_before = os.getloadavg()[0]
    OUT.mkdir(parents=True, exist_ok=True)
    results, simulated = {}, []
    try:
        for task in [args.only] if args.only else list(TASKS):
            data = given[task]
            if data is None:
                data = OUT / f"table1-{Path(TASKS[task]['config']).stem}-n{n_images}.zarr"
                simulated.append(data)  # before simulating: a failed run is cleaned up too
                print(f"simulating {n_images} images of {TASKS[task]['config'].name} ...")
                simulate_dataset(TASKS[task]["config"], data, n_images, args.workers)
            results[task] = run_task(
                task,
                data,
                model=models[task] or None,
                methods=methods,
                backprop_max_images=backprop_max,
                device=args.device,
                tta=not args.no_tta,
            )
            print(format_task(results[task]), flush=True)
    finally:
        if not args.keep_data:
            for path in simulated:
                shutil.rmtree(path, ignore_errors=True)
    problems = [p for r in results.values() for p in problems_of(r)]
    summary = {
        "benchmark": "table1",
        "paper": {t: {m: list(v) for m, v in p.items()} for t, p in PAPER.items()},
        "settings": {
            "n_images_simulated": n_images,
            "backprop_max_images": backprop_max,
            "methods": list(methods),
            "models": models,
            "device": args.device or "cpu",
            "tta": not args.no_tta,
        },
        "tasks": results,
        "load_average": [load_before, os.getloadavg()[0]],
        "problems": problems,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(summary, indent=1))
    if max(summary["load_average"]) > (os.cpu_count() or 1):
        print("note: the load average exceeded the core count; times include other work")
    for p in problems:
        print(f"PROBLEM: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
