"""Figure: the bundled mitochondria model next to Otsu on four real live-cell epi images.

The images are ``../shared/data/real-mito-epi/*.png`` (``--data``): 256 x 256 crops of live
H9c2 cells expressing mCherry-OMP25 on a DeltaVision Elite (the founding paper's
LiveEpi1RatMitoRed conditions), stored as 8-bit RGB PNGs with identical channels and no
ground truth. Each is segmented as ``subcell segment IMAGE --model M --pixel-nm P`` does
(:func:`subcell.pipeline.segment.run_segment`) with the ``otsu`` segmenter and with the
model (``--model``, default the bundled ``mitochondria-epi``). The figure
(``docs/figures/real-mito-epi.png``, ``--out``) has one row per image and the columns
image | Otsu outlines | model outlines; the image is shown between its 0.5th and 99.8th
percentiles. Per image the foreground fraction and object count (connected components,
8-connected) of both methods are printed and saved to ``benchmarks/out/real_mito_figure.json``.

Pixel size. The PNGs carry none, and the seed paper's text gives none for its live data (its
Supplementary Table 2 is not in ``seeds/``). The paper simulated SimEpi1Mito with 42 nm
pixels and applied the model trained on it to LiveEpi1RatMitoRed directly, so ``--pixel-nm``
defaults to 42 nm: the model then sees the images at the scale the paper's model saw them.
A caution: the tubules' apparent widths (FWHM 6-8 px in image 3) would suggest about 60-70 nm
pixels if they were 400 nm tubes, so the true value may be larger; the model was trained on
tubes of 200-600 nm, which covers both readings.

    .venv/bin/python benchmarks/real_mito_figure.py [--model DIR|NAME] [--pixel-nm 42]
    .venv/bin/python benchmarks/run.py real_mito_figure [--quick]   # quick: out/ only
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
DATA = ROOT.parent / "shared" / "data" / "real-mito-epi"
FIGURE = ROOT / "docs" / "figures" / "real-mito-epi.png"
MODEL = "mitochondria-epi"
PIXEL_NM = 42.0
OTSU_RGB = (255, 190, 0)  # amber
MODEL_RGB = (0, 230, 90)  # green
HEADER_PX = 22
GAP_PX = 4


def stretch(image: np.ndarray) -> np.ndarray:
    """uint8 display of a 2D image between its 0.5th and 99.8th percentiles."""
    low, high = np.percentile(image, [0.5, 99.8])
    scaled = (np.asarray(image, np.float64) - low) / max(high - low, 1e-12)
    return (np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)


def outlined(grey: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """RGB of a uint8 image with the inner boundary pixels of ``mask`` in ``colour``."""
    from scipy import ndimage

    rgb = np.repeat(grey[..., None], 3, axis=-1)
    mask = np.asarray(mask, bool)
    rgb[mask & ~ndimage.binary_erosion(mask, border_value=1)] = colour
    return rgb


def segment_images(paths: list[Path], model, pixel_nm: float) -> list[dict]:
    """Segment each image with Otsu and ``model``; per image the display panels and stats.

    Returns
    -------
    list of dict
        ``name``, ``grey`` (uint8 display), ``otsu`` / ``model`` (each ``mask`` (Y, X) bool,
        ``foreground_fraction``, ``objects``, ``seconds``).
    """
    from subcell.pipeline.segment import resolve_method, run_segment
    from subcell.pipeline.segment_steps import count_objects
    from subcell.pipeline.volumes import read_volume

    methods = {"otsu": resolve_method("otsu"), "model": resolve_method(model)}
    rows = []
    for path in paths:
        volume = read_volume(path)
        row = {"name": path.name, "grey": stretch(np.asarray(volume.data)[0, 0])}
        for key, method in methods.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the PNG states no pixel size: we give it
                result = run_segment(volume, method, pixel_nm=pixel_nm)
            semantic = result.masks.semantic
            row[key] = {
                "method": method.name,
                "mask": semantic.any(axis=0)[0],
                "foreground_fraction": float(semantic.any(axis=0).mean()),
                "objects": sum(count_objects(result.masks).values()),
                "seconds": result.seconds,
            }
        rows.append(row)
    return rows


def figure(rows: list[dict], model_label: str, out: Path) -> Path:
    """The grid PNG: a header, then per image: image | Otsu outlines | model outlines."""
    from PIL import Image, ImageDraw, ImageFont

    size = rows[0]["grey"].shape
    width = 3 * size[1] + 2 * GAP_PX
    height = HEADER_PX + len(rows) * size[0] + (len(rows) - 1) * GAP_PX
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=15)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        font = ImageFont.load_default()
    titles = [("image", (0, 0, 0)), ("Otsu", (150, 100, 0)), (model_label, (0, 130, 50))]
    for c, (title, colour) in enumerate(titles):
        draw.text((c * (size[1] + GAP_PX) + 4, 3), title, fill=colour, font=font)
    for r, row in enumerate(rows):
        panels = [
            np.repeat(row["grey"][..., None], 3, axis=-1),
            outlined(row["grey"], row["otsu"]["mask"], OTSU_RGB),
            outlined(row["grey"], row["model"]["mask"], MODEL_RGB),
        ]
        top = HEADER_PX + r * (size[0] + GAP_PX)
        for c, panel in enumerate(panels):
            canvas.paste(Image.fromarray(panel), (c * (size[1] + GAP_PX), top))
    out.parent.mkdir(parents=True, exist_ok=True)
    # A fixed palette keeps the file small and the outline colours exact: 64 grey levels,
    # the outline and title colours, nearest-colour mapping without dithering.
    greys = [(round(i * 255 / 63),) * 3 for i in range(64)]
    colours = greys + [OTSU_RGB, MODEL_RGB] + [c for _, c in titles[1:]]
    palette = Image.new("P", (1, 1))
    palette.putpalette([v for c in colours for v in c])
    indexed = canvas.quantize(palette=palette, dither=Image.Dither.NONE)
    indexed.save(out, optimize=True)
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA), help="folder of the real PNGs")
    parser.add_argument("--model", default=MODEL, help="model name or directory")
    parser.add_argument(
        "--pixel-nm", type=float, default=PIXEL_NM, help="pixel size of the images (nm)"
    )
    parser.add_argument("--out", help=f"figure PNG (default {FIGURE.relative_to(ROOT)})")
    parser.add_argument("--quick", action="store_true", help="write to benchmarks/out/ only")
    return parser


def _model_available(model: str) -> bool:
    from subcell.models import bundled_names

    return Path(model, "card.json").is_file() or model in bundled_names()


def main(argv: list[str] | None = None, quick: bool = False) -> int:
    """Make the figure and print per-image stats; 0 also when data or model are missing."""
    args = _parser().parse_args([] if argv is None else argv)
    quick = quick or args.quick
    paths = sorted(Path(args.data).glob("*.png"))
    if not paths:
        print(f"SKIPPED: no PNG images in {args.data} (give --data)")
        return 0
    if not _model_available(args.model):
        print(f"SKIPPED: model {args.model!r} is not installed (give --model DIR)")
        return 0
    out = Path(args.out) if args.out else (OUT / FIGURE.name if quick else FIGURE)
    rows = segment_images(paths, args.model, args.pixel_nm)
    label = rows[0]["model"]["method"]
    figure(rows, f"{label} (ours)", out)
    print(f"{len(rows)} images, pixel size {args.pixel_nm:g} nm, model {label}")
    print(f"  {'image':<28} {'Otsu fg':>8} {'objects':>8} {'model fg':>9} {'objects':>8}")
    for row in rows:
        o, m = row["otsu"], row["model"]
        print(
            f"  {row['name']:<28} {o['foreground_fraction']:>8.4f} {o['objects']:>8d} "
            f"{m['foreground_fraction']:>9.4f} {m['objects']:>8d}"
        )
    print(f"figure: {out} ({out.stat().st_size / 1024:.0f} kB)")
    stats = {
        "pixel_nm": args.pixel_nm,
        "model": label,
        "figure": str(out),
        "images": [
            {
                "name": row["name"],
                **{
                    key: {k: v for k, v in row[key].items() if k != "mask"}
                    for key in ("otsu", "model")
                },
            }
            for row in rows
        ],
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "real_mito_figure.json").write_text(json.dumps(stats, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
