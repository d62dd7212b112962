"""Pipeline steps ``analyze``, ``compare`` and ``track``.

``analyze`` measures the objects of one label image, a folder of them, or every image of a
prediction group or dataset (one folder of tables and plots per image, under
``analysis/``; :mod:`subcell.pipeline.analyze_group`). A plugin that measures several
classes (``compartments``) gets the masks' real classes where the input has them.
``compare`` sets the analyses of several conditions side by side (``subcell analyze
--compare``). ``track`` follows the objects of a label time series.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from subcell.core.errors import ConfigError, VolumeError
from subcell.pipeline.run import context
from subcell.pipeline.schemas import AnalyzeConfig
from subcell.pipeline.tracking.link import TrackingConfig

__all__ = [
    "AnalyzeStep",
    "AnalyzeStepConfig",
    "CompareStep",
    "CompareStepConfig",
    "TrackStep",
    "TrackStepConfig",
]


def _non_negative(instance, attribute, value):
    if value < 0:
        raise ValueError(f"'{attribute.name}' must be >= 0 (0: from the file), got {value}")


@attrs.frozen(kw_only=True)
class AnalyzeStepConfig:
    """The ``analyze`` step: per-object tables, summaries and plots (``subcell analyze``).

    Attributes
    ----------
    config
        An analyze config with one analytics plugin (``analytics: [{plugin:
        mitochondria}]``; packaged default ``region_props``).
    pixel_nm, z_nm
        Pixel size and z step in nm; 0: from the files.
    condition
        The experimental condition, kept for ``compare``.
    binary
        Treat every non-zero value as foreground and label connected components.
    plots
        Write the PNG plots as well as the tables.
    """

    config: AnalyzeConfig | None = None
    pixel_nm: float = attrs.field(default=0.0, converter=float, validator=_non_negative)
    z_nm: float = attrs.field(default=0.0, converter=float, validator=_non_negative)
    condition: str = ""
    binary: bool = False
    plots: bool = True


class AnalyzeStep:
    """Writes ``analysis/`` (one image) or ``analysis/<image>/`` (several). ``image`` (the
    intensity image of one label file, or the dataset a prediction group was segmented
    from) adds the intensity columns."""

    inputs = {"labels": "required", "image": "optional"}
    outputs = ("analysis",)

    def __init__(self, config: AnalyzeStepConfig) -> None:
        if config.config is not None and len(config.config.analytics) != 1:
            raise ConfigError(
                f"config: analytics: an analyze step takes one plugin, got "
                f"{len(config.config.analytics)}; use one step per plugin"
            )
        self.config = config

    def _plugin(self) -> tuple[str, list[str]]:
        """The analytics plugin and its settings as ``KEY=VALUE`` overrides."""
        from subcell.core.structuring import unstructure

        if self.config.config is None:
            return "region_props", []
        spec = self.config.config.analytics[0]
        return spec.plugin, _flatten(unstructure(spec.config))

    def run(self, inputs: dict, out: Path) -> dict[str, Path]:
        from subcell.pipeline.analyze import analyze_file
        from subcell.pipeline.analyze_group import analyze_group, label_group
        from subcell.pipeline.run.steps_segment import file_stem, image_files

        registry = context.registry()
        labels, folder = Path(inputs["labels"]), out / "analysis"
        image = inputs.get("image")
        plugin, overrides = self._plugin()
        common = {
            "plugin": plugin,
            "pixel_nm": self.config.pixel_nm or None,
            "z_nm": self.config.z_nm or None,
            "condition": self.config.condition or None,
            "image": image,
            "overrides": overrides,
            "plots": self.config.plots,
            "registry": registry,
        }
        if label_group(labels) is not None:
            analyze_group(labels, folder, **common)
            return {"analysis": folder}
        files = image_files(labels, registry) if labels.is_dir() else [labels]
        if image is not None and labels.is_dir():
            raise ConfigError("image: give it with one label file or a prediction group")
        for file in files:
            out_dir = folder / file_stem(file) if labels.is_dir() else folder
            analyze_file(file, out_dir, binary=self.config.binary, **common)
        return {"analysis": folder}


def _flatten(data: dict, prefix: str = "") -> list[str]:
    """A nested mapping as ``a.b=value`` overrides (values as YAML)."""
    import yaml

    texts = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            texts += _flatten(value, f"{path}.")
        else:
            dumped = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
            texts.append(f"{path}={dumped.removesuffix(chr(10) + '...')}")
    return texts


@attrs.frozen(kw_only=True)
class CompareStepConfig:
    """The ``compare`` step: conditions side by side (``subcell analyze --compare``).

    Attributes
    ----------
    plots
        Write ``compare_fractions.png`` and ``compare_sizes.png``.
    """

    plots: bool = True


class CompareStep:
    """Compares analyses by condition: ``analyses`` lists analyze outputs (each one image's
    folder, or a folder of them); the condition is what each analysis recorded."""

    inputs = {"analyses": "many"}
    outputs = ("comparison",)

    def __init__(self, config: CompareStepConfig) -> None:
        self.config = config

    def run(self, inputs: dict, out: Path) -> dict[str, Path]:
        from subcell.pipeline.analyze_compare import compare

        folders: list[Path] = []
        for path in inputs["analyses"].values():
            path = Path(path)
            if (path / "summary.json").is_file():
                folders.append(path)
            else:
                folders += sorted(p.parent for p in path.glob("*/summary.json"))
        if not folders:
            raise VolumeError("compare: no analysis folders (summary.json) in its inputs")
        compare(folders, out / "comparison", plots=self.config.plots)
        return {"comparison": out / "comparison"}


def _fraction(instance, attribute, value):
    if not 0 < value <= 1:
        raise ValueError(f"'{attribute.name}' must be in (0, 1], got {value}")


@attrs.frozen(kw_only=True)
class TrackStepConfig:
    """The ``track`` step: tracks and events of a label time series (``subcell track``).

    Attributes
    ----------
    tracker
        Tracker parameters (``subcell track``'s tracker options).
    pixel_nm, z_step_nm, frame_s
        Pixel size, z step (nm) and frame interval (s); 0: from the file.
    index, class_name, components
        Dataset image, class to track (datasets), label each frame's components.
    contacts_class, contact_nm
        Class of the ``contacts`` input (datasets) and the contact distance (nm; 0: none).
    min_overlap
        Shared voxels, as a fraction of the smaller object, for split/merge events.
    overlay
        Write ``tracks.png``.
    """

    tracker: TrackingConfig = attrs.Factory(TrackingConfig)
    pixel_nm: float = attrs.field(default=0.0, converter=float, validator=_non_negative)
    z_step_nm: float = attrs.field(default=0.0, converter=float, validator=_non_negative)
    frame_s: float = attrs.field(default=0.0, converter=float, validator=_non_negative)
    index: int = attrs.field(default=0, converter=int, validator=attrs.validators.ge(0))
    class_name: str = ""
    components: bool = False
    contacts_class: str = ""
    contact_nm: float = attrs.field(default=0.0, converter=float, validator=_non_negative)
    min_overlap: float = attrs.field(default=0.2, converter=float, validator=_fraction)
    overlay: bool = True


class TrackStep:
    """Writes ``tracks/`` (tracks.csv, events.csv, summary.json, tracks.png); ``contacts``
    (a second label series) adds contact events, ``truth`` HOTA and identity switches."""

    inputs = {"labels": "required", "contacts": "optional", "truth": "optional"}
    outputs = ("tracks",)

    def __init__(self, config: TrackStepConfig) -> None:
        self.config = config

    def run(self, inputs: dict, out: Path) -> dict[str, Path]:
        from subcell.pipeline.tracking.run import track_file

        c = self.config
        track_file(
            inputs["labels"],
            out / "tracks",
            pixel_nm=c.pixel_nm or None,
            z_step_nm=c.z_step_nm or None,
            frame_s=c.frame_s or None,
            config=c.tracker,
            index=c.index,
            class_name=c.class_name or None,
            components=c.components,
            contacts=inputs.get("contacts"),
            contacts_class=c.contacts_class or None,
            contact_nm=c.contact_nm if "contacts" in inputs else None,
            truth=inputs.get("truth"),
            min_overlap_fraction=c.min_overlap,
            overlay=c.overlay,
        )
        return {"tracks": out / "tracks"}
