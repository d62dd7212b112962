"""The cellcutter step: single-cell segmentation without annotation (``subcell cellcutter``)."""

from subcell.pipeline.cellcutter.model_dir import CellCutterModel, load_model, save_model
from subcell.pipeline.cellcutter.run import CellCutterResult, cell_volume, run_cellcutter

__all__ = [
    "CellCutterModel",
    "CellCutterResult",
    "cell_volume",
    "load_model",
    "run_cellcutter",
    "save_model",
]
