"""The demo's ``report.md``."""

from __future__ import annotations

from pathlib import Path


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def report_markdown(
    optics: dict,
    summary: dict,
    timings: dict[str, float],
    zarr_path: Path,
    methods: tuple[str, ...],
) -> str:
    """The Markdown report of one demo run.

    Parameters
    ----------
    optics
        The simulate config's ``microscope`` (``na``, ``emission_nm``, ``pixel_nm``).
    summary
        ``mitochondria_simulated``, ``objects_found`` and ``scores`` (method -> ``miou``,
        ``f1``, ``iou_foreground``, ``pixel_accuracy``, ``ap50``, ``objects``).
    timings
        Seconds per pipeline step.
    zarr_path
        The OME-Zarr image written.
    methods
        The methods, the bundled model first.
    """
    scores = summary["scores"]
    rows = "\n".join(
        f"| {m} | {_fmt(s['miou'])} | {_fmt(s['f1'])} | {_fmt(s['iou_foreground'])} | "
        f"{_fmt(s['pixel_accuracy'])} | {_fmt(s['ap50'])} | {s['objects']} |"
        for m, s in scores.items()
    )
    timing = "\n".join(f"| {k} | {v:.2f} |" for k, v in timings.items())
    files = "\n".join(f"- `{m}-mask.tif`, `{m}-overlay.png`" for m in methods)
    return f"""# subcell demo

A widefield image of {summary["mitochondria_simulated"]} mitochondria simulated from physics
(membrane-labelled 3D tubes, Gibson–Lanni PSF at NA {optics["na"]}, {optics["emission_nm"]} nm
emission, {optics["pixel_nm"]} nm pixels, sCMOS camera), segmented with the bundled
`{methods[0]}` model and with Otsu's method, and written with its ground truth as
OME-Zarr (`{zarr_path.name}`, provenance in its attributes; read back and checked).

![image, ground truth and segmentations](overview.png)

*From left: detector counts; ground truth (green); {methods[0]} (red); Otsu (blue).*

## Segmentation against ground truth

mIoU is the mean IoU over background and mitochondria (the founding paper's definition);
F1 is that of the mitochondria class; AP@0.5 matches objects at IoU ≥ 0.5.

| method | mIoU | F1 | IoU (mito) | pixel accuracy | AP@0.5 | objects |
|---|---|---|---|---|---|---|
{rows}

## Files

{files}
- `objects.csv`: one row per mitochondrion segmented by {methods[0]}
- `mito.ome.zarr`: the image with its ground-truth labels; `simulate.yaml`: its config

Segment your own image the same way:

```bash
subcell segment my-image.tif --model {methods[0]} --pixel-nm 42 --out mask.tif --overlay overlay.png
```

## How it ran

`demo.yaml` is the pipeline `subcell run` ran: simulate, segment (twice), evaluate (twice),
analyze, then this report, each step in its own folder under `steps/` with a record of its
resolved config and of the hashes of what it was made from. From this folder:

```bash
subcell run demo.yaml --dry-run                          # every step up to date
subcell run demo.yaml --set simulate.microscope.na=1.2   # what changes reruns
subcell run --trace steps/model/prediction.zarr          # where a mask came from
```

| step | seconds |
|---|---|
{timing}

Rerunning with the same seed gives the same bytes.
"""
