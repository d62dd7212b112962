"""The demo's ``report.md``."""

from __future__ import annotations

from pathlib import Path


def report_markdown(config, summary: dict, zarr_path: Path, methods: tuple[str, ...]) -> str:
    """The Markdown report of one demo run."""
    optics = config.microscope.config
    scores = summary["scores"]
    rows = "\n".join(
        f"| {m} | {s['miou']:.3f} | {s['f1']:.3f} | {s['iou_foreground']:.3f} | "
        f"{s['pixel_accuracy']:.3f} | {s['ap50']:.3f} | {s['objects']} |"
        for m, s in scores.items()
    )
    timing = "\n".join(f"| {k} | {v:.2f} |" for k, v in summary["timings_s"].items())
    files = "\n".join(f"- `{m}-mask.tif`, `{m}-overlay.png`" for m in methods)
    return f"""# subcell demo

A widefield image of {summary["mitochondria_simulated"]} mitochondria simulated from physics
(membrane-labelled 3D tubes, Gibson–Lanni PSF at NA {optics.na}, {optics.emission_nm} nm
emission, {optics.pixel_nm} nm pixels, sCMOS camera), written with its ground truth as
OME-Zarr (`{zarr_path.name}`, provenance in its attributes), read back, then segmented with
the bundled `{methods[0]}` model and with Otsu's method.

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

## Time per stage (s)

| stage | seconds |
|---|---|
{timing}

Rerunning with the same seed gives the same bytes.
"""
