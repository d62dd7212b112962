"""Nile Red: 15 lipid compartments from one dye and two spectral channels (seed paper 2).

Registers the ``nile_red_cell`` phantom: a whole cell whose membranes carry Nile Red with an
emission peak set by their lipid polarity, imaged through a spectral microscope
(``spinning_disk``) in a yellow and a red band. ``preprocess`` (intensity and ratio images,
crops) and ``coloc`` (colocalization ground truth for real data) serve the networks.
"""

from subcell.core.hookspecs import hookimpl
from subcell.plugins.nile_red.phantom import NileRedCell, NileRedCellConfig


@hookimpl
def register_phantoms(register):
    register(
        "nile_red_cell",
        NileRedCellConfig,
        NileRedCell,
        "whole cell, 15 compartments stained by Nile Red (two spectral channels)",
    )
