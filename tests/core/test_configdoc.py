import json

import attrs
import pytest

from subcell.cli import main
from subcell.core.configdoc import parameters, undocumented
from subcell.pipeline.schemas import STEP_SCHEMAS, MotionConfig
from subcell.registry import get_registry


@attrs.frozen(kw_only=True)
class _Base:
    """Base.

    Attributes
    ----------
    a_nm, b_s
        Two things, in nm and s,
        over two lines.
    """

    a_nm: float = 1.0
    b_s: float = 2.0


@attrs.frozen(kw_only=True)
class _Child(_Base):
    """Child.

    Attributes
    ----------
    a_nm, b_s,
    c
        See :class:`_Base`.

    Notes
    -----
    d
        Not an attribute.
    """

    c: tuple[int, int] = (1, 2)
    d: bool = False


def test_parameters_pair_fields_with_their_docstring_text_and_defaults():
    params = {p.name: p for p in parameters(_Child)}
    assert list(params) == ["a_nm", "b_s", "c", "d"]
    # "See <base>" defers to the base's words; names may run over two lines.
    assert params["a_nm"].doc == "Two things, in nm and s, over two lines."
    assert params["c"].doc == "See :class:`_Base`."
    assert params["c"].default == "[1, 2]" and params["d"].default == "false"
    assert undocumented(_Child) == ["d"]  # a Notes section documents nothing


def test_every_builtin_plugin_and_step_documents_every_parameter():
    missing = {
        f"{r.kind}:{r.name}": undocumented(r.config_cls)
        for r in get_registry().all()
        if r.package == "subcell" and attrs.has(r.config_cls)
    }
    for cls in [*STEP_SCHEMAS.values(), MotionConfig]:
        missing[cls.__name__] = undocumented(cls)
    assert {k: v for k, v in missing.items() if v} == {}


def test_cli_lists_parameters_with_defaults_and_meaning(capsys):
    assert main(["plugins", "--kind", "microscope", "--params", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert {"epi", "airyscan", "spinning_disk"} <= set(rows)
    na = next(p for p in rows["airyscan"]["parameters"] if p["name"] == "na")
    assert na["default"] == "1.4" and "Numerical aperture" in na["doc"]


@pytest.mark.parametrize("kind", ["structure", "noise"])
def test_cli_parameter_tables_render(capsys, kind):
    assert main(["plugins", "--kind", kind, "--params"]) == 0
    out = capsys.readouterr().out
    assert "parameter" in out and "meaning" in out
