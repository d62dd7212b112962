"""cellcutter: single-cell segmentation without annotation (Din & Yu 2021).

Registers the ``clumped_cells`` phantom (tightly packed cells with nuclei, imaged in a
whole-cell and a nuclear channel, with cell instances as ground truth). The method itself
(markers, foreground graph cut, the patch-consistency network and its integration, and the
marker-controlled watershed baseline) is in the modules of this package; the ``cellcutter``
pipeline step and command drive it.
"""

from subcell.core.hookspecs import hookimpl
from subcell.plugins.cellcutter.phantom import ClumpedCells, ClumpedCellsConfig


@hookimpl
def register_phantoms(register):
    register(
        "clumped_cells",
        ClumpedCellsConfig,
        ClumpedCells,
        "tightly clumped cells with nuclei: whole-cell and nuclear dyes, cell instances",
    )
