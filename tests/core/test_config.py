"""Config layers: extends, overrides, deep merge."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from subcell.core.config import (
    apply_overrides,
    deep_merge,
    format_path,
    load_layers,
    parse_override,
    read_yaml,
)
from subcell.core.errors import ConfigError


def test_changing_plugin_replaces_section_instead_of_merging(tmp_path):
    (tmp_path / "base.yaml").write_text("microscope: {plugin: epi, na: 1.4}\n")
    (tmp_path / "exp.yaml").write_text("extends: base.yaml\nmicroscope: {plugin: beads}\n")
    data, _ = load_layers(tmp_path / "exp.yaml")
    assert data["microscope"] == {"plugin": "beads"}


def test_extends_cycle_and_missing_base_are_config_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle: a.yaml -> b.yaml -> a.yaml"):
        load_layers(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: missing.yaml\n")
    with pytest.raises(ConfigError, match="extends 'missing.yaml', which does not exist"):
        load_layers(tmp_path / "c.yaml")


def test_bad_yaml_names_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("seed: 1\nmicroscope: {plugin: epi\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML \(line \d+"):
        load_layers(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_layers(tmp_path / "list.yaml")


def test_overrides_parse_yaml_values_and_index_lists():
    assert parse_override("microscope.na=1.2") == (("microscope", "na"), 1.2)
    assert parse_override("a.0.b=[1, 2]") == (("a", 0, "b"), [1, 2])
    data = {"a": {"b": 1}, "l": [{"x": 1}]}
    origins = {}
    out = apply_overrides(data, ["a.b=2", "l.0.x=true", "c.d=text"], origins)
    assert out == {"a": {"b": 2}, "l": [{"x": True}], "c": {"d": "text"}}
    assert data == {"a": {"b": 1}, "l": [{"x": 1}]}, "the input is not modified"
    assert origins[("a", "b")] == "--set"
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides(data, ["novalue"])
    with pytest.raises(ConfigError, match="no item 3"):
        apply_overrides(data, ["l.3=1"])


def test_format_path():
    assert format_path(("structures", 0, "count")) == "structures[0].count"
    assert format_path(()) == "(top level)"


keys = st.sampled_from(["a", "b", "c", "d"])
trees = st.recursive(
    st.integers() | st.text(max_size=3),
    lambda children: st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)


def _leaves(tree, prefix=()):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, (*prefix, key))
    else:
        yield prefix, tree


def _get(tree, path):
    for part in path:
        tree = tree[part]
    return tree


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, trees, max_size=4), st.dictionaries(keys, trees, max_size=4))
def test_deep_merge_over_wins_at_every_leaf_and_keeps_other_base_keys(base, over):
    merged = deep_merge(base, over)
    for path, value in _leaves(over):
        if path:
            assert _get(merged, path) == value
    for key in base:
        assert key in merged
    assert deep_merge(merged, over) == merged  # idempotent


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e-3", 0.001), ("2E5", 200000.0), ("-2.5e+2", -250.0), ("1.0e-3", 0.001), ("12", 12)],
)
def test_exponent_numbers_without_a_dot_are_numbers(text, value, tmp_path):
    """YAML 1.1 reads ``1e-3`` as a string; a learning rate written so must be a number."""
    assert parse_override(f"learning_rate={text}") == (("learning_rate",), value)
    (tmp_path / "c.yaml").write_text(f"learning_rate: {text}\nname: 1e3x\n")
    assert read_yaml(tmp_path / "c.yaml") == {"learning_rate": value, "name": "1e3x"}
