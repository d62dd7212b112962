"""Pipeline steps ``simulate`` and ``train``: thin adapters over the Python functions."""

from __future__ import annotations

from pathlib import Path

import attrs

from subcell.pipeline.run import context
from subcell.pipeline.schemas import PhantomConfig, SimulateConfig
from subcell.pipeline.train_schema import TrainConfig

__all__ = ["SimulateStep", "SimulateStepConfig", "TrainStep", "TrainStepConfig"]

_UNHASHED = {"hash": False}


@attrs.frozen(kw_only=True)
class SimulateStepConfig:
    """The ``simulate`` step: a simulated dataset (``subcell simulate``).

    Attributes
    ----------
    config
        The simulate config: the step's ``config:``, a file ``subcell simulate`` takes (or
        the same inline): a ``step: simulate`` config, or a ``step: phantom`` config (whole
        scenes drawn by a phantom plugin); ``set: {n_tiles: 40}`` sets the number of images.
    workers
        Processes simulating images in parallel; the data do not depend on it.
    """

    config: SimulateConfig | PhantomConfig | None = None
    workers: int = attrs.field(
        default=1, converter=int, validator=attrs.validators.ge(1), metadata=_UNHASHED
    )


class SimulateStep:
    """Simulates ``config.n_tiles`` images into ``data.zarr`` (resumes an interrupted run)."""

    inputs: dict[str, str] = {}
    outputs = ("data",)

    def __init__(self, config: SimulateStepConfig) -> None:
        self.config = config

    def run(self, inputs: dict, out: Path) -> dict[str, Path]:
        from subcell.core.errors import ConfigError
        from subcell.pipeline.dataset import write_dataset

        if self.config.config is None:
            raise ConfigError("simulate: no config; give the step a simulate config file")
        result = write_dataset(
            self.config.config,
            out / "data.zarr",
            workers=self.config.workers,
            registry=context.registry(),
            progress=context.show_progress(),
        )
        return {"data": result.path}


@attrs.frozen(kw_only=True)
class TrainStepConfig:
    """The ``train`` step: a segmentation network (``subcell train``).

    Attributes
    ----------
    config
        The train config: the step's ``config:``, a file ``subcell train`` takes (the
        packaged defaults alone give a small residual U-Net).
    device
        ``auto`` (CUDA when present), ``cpu`` or ``cuda``; not part of the reuse hash.
    """

    config: TrainConfig | None = None
    device: str = attrs.field(default="auto", metadata=_UNHASHED)


class TrainStep:
    """Trains on ``data`` (a simulated dataset) into ``model/``; ``init_from`` (a model
    folder, e.g. another train step's output) starts from its weights (transfer learning).
    An interrupted run resumes from its last epoch."""

    inputs = {"data": "required", "init_from": "optional"}
    outputs = ("model",)

    def __init__(self, config: TrainStepConfig) -> None:
        self.config = config

    def run(self, inputs: dict, out: Path) -> dict[str, Path]:
        from subcell.pipeline.training import train

        init = inputs.get("init_from")
        result = train(
            self.config.config,
            inputs["data"],
            out / "model",
            init_from=None if init is None else str(init),
            device=self.config.device,
            progress=context.show_progress(),
            registry=context.registry(),
        )
        return {"model": result.path}
