"""cellcutter: single-cell segmentation without annotation (Din & Yu 2021).

Registers the ``clumped_cells`` phantom (tightly packed cells with nuclei, imaged in a
whole-cell and a nuclear channel, with cell instances as ground truth) and two segmenters
on the same markers and foreground: ``cellcutter`` (a network trained on the image itself
with the patch-consistency loss, no labels) and ``marker_watershed`` (the baseline). The
``cellcutter`` pipeline step and command drive them (reading, markers from a
synthetic-nucleus model, saving and reusing trained networks).
"""

from subcell.core.hookspecs import hookimpl
from subcell.plugins.cellcutter.method import (
    CellCutter,
    CellCutterMethodConfig,
    MarkerWatershed,
    MarkerWatershedConfig,
)
from subcell.plugins.cellcutter.phantom import ClumpedCells, ClumpedCellsConfig


@hookimpl
def register_phantoms(register):
    register(
        "clumped_cells",
        ClumpedCellsConfig,
        ClumpedCells,
        "tightly clumped cells with nuclei: whole-cell and nuclear dyes, cell instances",
    )


@hookimpl
def register_segmenters(register):
    register(
        "cellcutter",
        CellCutterMethodConfig,
        CellCutter,
        "single cells from nucleus markers, trained on the image itself (no labels)",
    )
    register(
        "marker_watershed",
        MarkerWatershedConfig,
        MarkerWatershed,
        "marker-controlled watershed on the cellcutter markers and foreground",
    )
