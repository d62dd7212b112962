"""Every hook is documented and tested; the README names the two commands."""

import re
from pathlib import Path

import pytest

from subcell.core import hookspecs
from subcell.core.kinds import KINDS

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [kind.hook for kind in KINDS.values()]


def test_hookspecs_match_kinds():
    specs = sorted(n for n in dir(hookspecs) if n.startswith("register_"))
    assert specs == sorted(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook):
    guide = (ROOT / "docs" / "plugins.md").read_text()
    assert re.search(rf"^### {hook}$", guide, re.M), f"docs/plugins.md has no section for {hook}"


# Built-ins that live above the plugin layer (they drive pipeline steps), with their tests.
_PIPELINE_BUILTINS = {"run": (ROOT / "src/subcell/pipeline/run", ROOT / "tests/pipeline/run")}


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_implemented_by_a_tested_plugin(hook):
    """Each hook has a built-in implementation whose package has tests."""
    plugins_dir = ROOT / "src" / "subcell" / "plugins"
    packages = {
        p.name: (p, ROOT / "tests" / "plugins" / f"test_{p.name}.py")
        for p in plugins_dir.iterdir()
        if p.is_dir()
    }
    packages |= _PIPELINE_BUILTINS
    implementers = {
        name: tests
        for name, (source, tests) in packages.items()
        if any(f"def {hook}(" in f.read_text() for f in source.rglob("*.py"))
    }
    assert implementers, f"no built-in implements {hook}"
    for name, tests in implementers.items():
        assert tests.exists(), f"{name} implements {hook} but has no {tests.name}"


def test_readme_names_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
