"""Shared set-up of the ``subcell run`` tests: a registry with the built-in steps and three
cheap test steps, and a helper that writes pipeline files."""

import textwrap
from pathlib import Path

import attrs
import pytest

from subcell.core.hookspecs import hookimpl
from subcell.pipeline.run import builtin_steps
from subcell.registry import build_registry


@attrs.frozen(kw_only=True)
class NumberConfig:
    value: int = 0
    note: str = attrs.field(default="", metadata={"hash": False})


class NumberStep:
    """Writes its value to value.txt."""

    inputs: dict = {}
    outputs = ("value",)

    def __init__(self, config):
        self.config = config

    def run(self, inputs, out):
        path = out / "value.txt"
        path.write_text(f"{self.config.value}\n")
        return {"value": path}


@attrs.frozen(kw_only=True)
class AddConfig:
    offset: int = 0


class AddStep:
    """Sums the numbers of its inputs plus an offset; ``terms`` is a many-input."""

    inputs = {"a": "required", "b": "optional", "terms": "many"}
    outputs = ("sum", "log")

    def __init__(self, config):
        self.config = config

    def run(self, inputs, out):
        paths = [inputs["a"], *([inputs["b"]] if "b" in inputs else [])]
        paths += list(inputs.get("terms", {}).values())
        total = sum(int(Path(p).read_text()) for p in paths) + self.config.offset
        (out / "sum.txt").write_text(f"{total}\n")
        (out / "log.txt").write_text(" ".join(sorted(inputs)) + "\n")
        return {"sum": out / "sum.txt", "log": out / "log.txt"}


@attrs.frozen(kw_only=True)
class CrashConfig:
    value: int = 1


class CrashStep:
    """Writes part.txt, then crashes while ``CRASH`` is true; a rerun in the same folder
    notes that it found part.txt (it resumed)."""

    CRASH = True
    inputs = {"a": "optional"}
    outputs = ("result",)

    def __init__(self, config):
        self.config = config

    def run(self, inputs, out):
        resumed = (out / "part.txt").is_file()
        (out / "part.txt").write_text("half\n")
        if CrashStep.CRASH:
            raise KeyboardInterrupt
        (out / "result.txt").write_text(f"{self.config.value} resumed={resumed}\n")
        return {"result": out / "result.txt"}


class StepsPlugin:
    @hookimpl
    def register_steps(self, register):
        register("number", NumberConfig, NumberStep, "a number in a file")
        register("add", AddConfig, AddStep, "the sum of numbers in files")
        register("crash", CrashConfig, CrashStep, "a step that is interrupted")


def registry_with(**extra):
    """The built-in plugins, the run steps (until the lead lists them as built-ins) and
    ``extra``."""
    base = build_registry(use_entry_points=False)
    if "simulate" not in base.names("step"):
        extra = {"run-steps": builtin_steps, **extra}
    return build_registry(use_entry_points=False, extra=extra)


@pytest.fixture(scope="session")
def registry():
    found = registry_with(**{"test-steps": StepsPlugin()})
    assert {"simulate", "train", "number", "add", "crash"} <= set(found.names("step"))
    return found


@pytest.fixture
def write(tmp_path):
    """``write(text, name="p.yaml")``: a pipeline file in tmp_path (text dedented)."""

    def make(text: str, name: str = "p.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    return make


@pytest.fixture
def crash_step():
    """The crash test step's class: set ``CRASH = False`` to let it finish."""
    return CrashStep


@pytest.fixture(autouse=True)
def _crash_on():
    CrashStep.CRASH = True
    yield
    CrashStep.CRASH = True
