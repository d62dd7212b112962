"""Pipeline step ``merge``: predictions of one dataset by several networks, as one map.

The Nile Red networks each predict a few of the 15 compartments (VOLUME-net nucleus,
cytosol and ECS; MITO-net mitochondria; ...); ``merge`` takes their prediction groups by
label and writes one ``prediction.zarr`` with every class, laid out as the ``segment``
step writes it (:func:`~subcell.pipeline.segment_dataset.prediction_group`), so that
``evaluate`` scores it against the dataset directly. The inputs must have segmented the
same images (dataset, split, image list, shape and voxel size: the attributes ``segment``
writes). A class comes from exactly one input. In each ``exclusive`` group a voxel keeps
at most one class: where several are set, the one listed last wins (the paint order of
the Nile Red ground truth, where a later structure overwrites an earlier one). Items are
read, merged and written one at a time; like ``segment``'s, the group says ``complete:
false`` until the last one is written, and inputs that say so are refused.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np

from subcell.core.errors import ConfigError, VolumeError

__all__ = [
    "MergeStep",
    "MergeStepConfig",
    "apply_exclusive",
    "merge_predictions",
    "open_prediction",
    "resolve_sources",
]

PREDICTION_FILE = "prediction.zarr"
# Attributes ``segment`` writes that say which images a prediction holds; inputs must agree.
_SAME = ("source", "split", "images")


def _distinct(instance, attribute, value):
    repeated = sorted({v for v in value if list(value).count(v) > 1})
    if repeated:
        raise ValueError(f"'{attribute.name}' names {', '.join(repeated)} more than once")
    if any(not v for v in value):
        raise ValueError(f"'{attribute.name}' holds an empty class name")


def _groups(instance, attribute, value):
    seen: dict[str, int] = {}
    for i, group in enumerate(value):
        if len(group) < 2:
            raise ValueError(
                f"'{attribute.name}' group {i} {list(group)}: a group needs at least two classes"
            )
        _distinct(instance, attribute, group)
        for name in group:
            if name in seen:
                raise ValueError(
                    f"'{attribute.name}': {name} is in groups {seen[name]} and {i}; a class "
                    f"belongs to one group at most"
                )
            seen[name] = i


@attrs.frozen(kw_only=True)
class MergeStepConfig:
    """The ``merge`` step: several predictions of one dataset as one map.

    Attributes
    ----------
    classes
        The output's classes, in this order (names the inputs predict); empty: every class
        of every input, in input order.
    exclusive
        Groups of classes of which a voxel keeps at most one; where several of a group are
        set, the one listed last wins. Groups do not share classes.
    """

    classes: tuple[str, ...] = attrs.field(default=(), validator=_distinct)
    exclusive: tuple[tuple[str, ...], ...] = attrs.field(default=(), validator=_groups)


class MergeStep:
    """Writes ``prediction.zarr``: the inputs' classes in one prediction group."""

    inputs = {"predictions": "many"}
    outputs = ("masks",)

    def __init__(self, config: MergeStepConfig) -> None:
        self.config = config

    def run(self, inputs: dict, out: Path) -> dict[str, Path]:
        predictions = inputs.get("predictions") or {}
        path = merge_predictions(
            predictions,
            out / PREDICTION_FILE,
            classes=self.config.classes,
            exclusive=self.config.exclusive,
        )
        return {"masks": path}


def open_prediction(label: str, path: str | Path):
    """A prediction group: ``path`` itself or its ``prediction.zarr`` (a segment step's
    folder).

    Raises
    ------
    VolumeError
        Neither is a zarr group with a ``mask`` array, or the group is incomplete.
    """
    import zarr

    path = Path(path)
    candidates = [path / PREDICTION_FILE, path] if path.is_dir() else [path]
    for candidate in candidates:
        if not (candidate / "zarr.json").is_file():
            continue
        try:
            group = zarr.open_group(str(candidate), mode="r")
        except Exception:  # noqa: BLE001 - an array or unreadable store: try the next
            continue
        if "mask" not in group:
            continue
        if group.attrs.get("complete") is False:
            raise VolumeError(
                f"merge: predictions.{label}: {candidate} is incomplete (the run that wrote "
                f"it stopped); segment again"
            )
        return group
    raise VolumeError(
        f"merge: predictions.{label}: {path} is not a prediction group (a segment step's "
        f"{PREDICTION_FILE})"
    )


def resolve_sources(
    predicted: dict[str, tuple[str, ...]], classes=(), exclusive=()
) -> dict[str, tuple[str, int]]:
    """Which input, and which of its channels, gives each output class.

    Parameters
    ----------
    predicted
        Input label -> the class names it predicts (in channel order).
    classes
        The output classes in order; empty: all of them, in input order.
    exclusive
        Exclusive groups; their classes must be output classes.

    Returns
    -------
    dict
        Output class -> (input label, channel), in output order.

    Raises
    ------
    ConfigError
        A class that no input predicts, a class that two inputs predict, or an exclusive
        class that is not an output class (the message lists the valid names).
    """
    givers: dict[str, list[tuple[str, int]]] = {}
    for label, names in predicted.items():
        for channel, name in enumerate(names):
            givers.setdefault(name, []).append((label, channel))
    wanted = tuple(classes) or tuple(givers)
    offered = "; ".join(f"{label}: {', '.join(names)}" for label, names in predicted.items())
    missing = [c for c in wanted if c not in givers]
    if missing:
        raise ConfigError(
            f"merge: classes: no input predicts {', '.join(missing)}; the inputs predict {offered}"
        )
    for name in wanted:
        if len(givers[name]) > 1:
            labels = " and ".join(repr(label) for label, _ in givers[name])
            raise ConfigError(
                f"merge: class {name} is predicted by both {labels}; list the classes to "
                f"take (classes:) without it, or merge one of them"
            )
    for group in exclusive:
        unknown = [c for c in group if c not in wanted]
        if unknown:
            raise ConfigError(
                f"merge: exclusive: {', '.join(unknown)} is no output class; output classes: "
                f"{', '.join(wanted)}"
            )
    return {name: givers[name][0] for name in wanted}


def apply_exclusive(semantic: np.ndarray, class_names, exclusive) -> np.ndarray:
    """Keep at most one class of each group per voxel: the one listed last (in place).

    Parameters
    ----------
    semantic
        (K, ...) binary masks, one channel per name of ``class_names``.
    class_names
        The channels' names.
    exclusive
        Groups of names; within a group a later name wins a voxel.

    Returns
    -------
    numpy.ndarray
        ``semantic``, changed in place.
    """
    index = {name: k for k, name in enumerate(class_names)}
    for group in exclusive:
        taken = np.zeros(semantic.shape[1:], dtype=bool)
        for name in reversed(group):  # the last listed claims its voxels first
            channel = semantic[index[name]]
            channel[taken] = 0
            taken |= channel != 0
    return semantic


def _check_same(groups: dict) -> None:
    """Every input holds the same images, shapes and voxel size as the first."""
    (first, ref), *others = groups.items()
    for label, group in others:
        for key in _SAME:
            if group.attrs.get(key) != ref.attrs.get(key):
                raise VolumeError(
                    f"merge: predictions {first!r} and {label!r} differ in {key}: "
                    f"{ref.attrs.get(key)} vs {group.attrs.get(key)}; merge predictions of "
                    f"the same dataset, split and images"
                )
        shapes = [tuple(g["mask"].shape) for g in (ref, group)]
        if shapes[0][:-4] + shapes[0][-3:] != shapes[1][:-4] + shapes[1][-3:]:
            raise VolumeError(
                f"merge: predictions {first!r} and {label!r} differ in shape: {shapes[0]} vs "
                f"{shapes[1]} (N, [T,] K, Z, Y, X)"
            )
        voxels = [ref.attrs.get("voxel_nm"), group.attrs.get("voxel_nm")]
        if None not in voxels and not np.allclose(voxels[0], voxels[1]):
            raise VolumeError(
                f"merge: predictions {first!r} and {label!r} differ in voxel size: "
                f"{voxels[0]} vs {voxels[1]} nm"
            )


def _class_names(label: str, group) -> tuple[str, ...]:
    names = group.attrs.get("class_names") or dict(group["mask"].attrs).get("class_names")
    k = int(group["mask"].shape[-4])
    if not names or len(names) != k:
        raise VolumeError(
            f"merge: predictions.{label}: its {k} mask channels carry no class names "
            f"(class_names); merge needs them"
        )
    return tuple(str(n) for n in names)


def merge_predictions(
    predictions: dict[str, str | Path], out: str | Path, *, classes=(), exclusive=()
) -> Path:
    """Merge prediction groups of one dataset into one (``merge`` step, module notes).

    Parameters
    ----------
    predictions
        Label -> a prediction group, or a folder holding ``prediction.zarr``.
    out
        The merged group's path (overwritten).
    classes, exclusive
        As :class:`MergeStepConfig`.

    Returns
    -------
    Path
        ``out``: ``mask`` (N, [T,] K, Z, Y, X) uint8 in the order of ``classes``; its
        attributes those of ``segment`` (``source``, ``split``, ``images`` and ``voxel_nm``
        from the inputs), ``method`` (``merge``), ``merged_from`` (class -> input label),
        ``merge_inputs`` (label -> path), ``exclusive`` and ``complete``.

    Raises
    ------
    ConfigError
        No inputs; classes no input predicts, or two do (see :func:`resolve_sources`).
    VolumeError
        An input that is not a (complete) prediction group, or inputs of different images.
    """
    from subcell.core.model import Masks
    from subcell.pipeline.segment_dataset import prediction_group

    if not predictions:
        raise ConfigError("merge: predictions: give it prediction groups by label")
    groups = {label: open_prediction(label, path) for label, path in predictions.items()}
    _check_same(groups)
    sources = resolve_sources(
        {label: _class_names(label, g) for label, g in groups.items()}, classes, exclusive
    )
    names = tuple(sources)
    ref = next(iter(groups.values()))
    lead = tuple(int(s) for s in ref["mask"].shape[:-4])
    attributes = {
        "complete": False,
        "method": "merge",
        "merged_from": {name: label for name, (label, _) in sources.items()},
        "merge_inputs": {label: str(Path(p)) for label, p in predictions.items()},
        "exclusive": [list(g) for g in exclusive],
    }
    out, merged = Path(out), None
    for item in np.ndindex(*lead):
        semantic = _merged_item(groups, sources, item)
        apply_exclusive(semantic, names, exclusive)
        if merged is None:
            voxel_nm = tuple(ref.attrs.get("voxel_nm") or (1.0, 1.0, 1.0))
            merged = prediction_group(
                out,
                lead,
                Masks(semantic, names, voxel_nm),
                source=ref.attrs.get("source", ""),
                split=ref.attrs.get("split", "all"),
                images=ref.attrs.get("images", range(lead[0])),
                instances=False,
                attributes=attributes,
            )
        merged["mask"][item] = semantic
    merged.attrs["complete"] = True
    return out


def _merged_item(groups: dict, sources: dict[str, tuple[str, int]], item) -> np.ndarray:
    """One item's (K, Z, Y, X) masks, each input's channels read once."""
    needed: dict[str, list[tuple[int, int]]] = {}
    for k, (label, channel) in enumerate(sources.values()):
        needed.setdefault(label, []).append((k, channel))
    semantic = None
    for label, pairs in needed.items():
        found = np.asarray(groups[label]["mask"][item])
        if semantic is None:
            semantic = np.zeros((len(sources), *found.shape[1:]), dtype=np.uint8)
        for k, channel in pairs:
            semantic[k] = found[channel] != 0
    return semantic
