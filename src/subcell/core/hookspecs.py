"""Hook specifications: one ``register_*`` hook per kind of plugin.

Each hook receives ``register(name, config_cls, factory, description)``: ``name`` is how
configs choose the plugin, ``config_cls`` a frozen attrs class of its parameters,
``factory(config)`` builds the object, ``description`` is one line.
"""

import pluggy

hookspec = pluggy.HookspecMarker("subcell")
hookimpl = pluggy.HookimplMarker("subcell")


@hookspec
def register_structures(register):
    """Register structures: geometry generators (organelles, beads, cells)."""


@hookspec
def register_labellings(register):
    """Register labellings: fluorophore placement on a geometry."""


@hookspec
def register_photophysics(register):
    """Register photophysics: emitter on/off behaviour over frames."""


@hookspec
def register_microscopes(register):
    """Register microscopes: PSF and detection channels."""


@hookspec
def register_noise_models(register):
    """Register noise models: photon counting and camera noise."""


@hookspec
def register_ground_truth_rules(register):
    """Register ground-truth rules: masks from what was simulated."""


@hookspec
def register_networks(register):
    """Register networks: torch modules for segmentation."""


@hookspec
def register_segmenters(register):
    """Register segmenters: classical baselines and learned methods."""


@hookspec
def register_analytics(register):
    """Register analytics: per-object measurements from masks."""


@hookspec
def register_readers(register):
    """Register readers: image file formats to volumes."""


@hookspec
def register_writers(register):
    """Register writers: volumes and masks to file formats."""


@hookspec
def register_phantoms(register):
    """Register phantoms: whole scenes drawn with several dyes and their ground truth."""


@hookspec
def register_steps(register):
    """Register pipeline steps that ``subcell run`` can chain."""
