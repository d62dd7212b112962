"""Provenance records: config, seed, plugins and library versions."""

import json

import attrs

from subcell import __version__
from subcell.core.provenance import config_hash, plugins_in, record, write_sidecar
from subcell.core.structuring import spec_type


@attrs.frozen
class Inner:
    value: int = 1


@attrs.frozen(kw_only=True)
class Outer:
    microscope: spec_type("microscope")
    items: tuple = ()


@attrs.frozen
class FakeRegistration:
    kind: str
    name: str
    package: str = "pkg"
    version: str = "1.2"


def test_plugins_in_walks_nested_specs_in_order():
    spec = spec_type
    config = Outer(
        microscope=spec("microscope")("epi", Inner()),
        items=(spec("structure")("beads", Inner()), spec("structure")("beads", Inner())),
    )
    assert plugins_in(config) == [("microscope", "epi"), ("structure", "beads")]


def test_record_and_sidecar(tmp_path):
    config = Outer(microscope=spec_type("microscope")("epi", Inner(3)))
    rec = record(config, seed=5, plugins=[FakeRegistration("microscope", "epi")], step="simulate")
    assert rec["subcell_version"] == __version__
    assert rec["seed"] == 5
    assert rec["config"] == {"microscope": {"plugin": "epi", "value": 3}, "items": []}
    assert rec["plugins"] == [
        {"kind": "microscope", "name": "epi", "package": "pkg", "version": "1.2"}
    ]
    assert "numpy" in rec["libraries"]
    assert rec["config_sha256"] == config_hash(rec["config"])
    path = write_sidecar(tmp_path / "out.tif", rec)
    assert path.name == "out.tif.provenance.json"
    assert json.loads(path.read_text())["seed"] == 5


def test_config_hash_ignores_key_order_and_sees_values():
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
