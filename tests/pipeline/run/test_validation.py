"""Bad pipelines fail before anything runs: one line naming the step and the key."""

import pytest

from subcell.core.errors import ConfigError
from subcell.pipeline.run import load_pipeline, make_plan
from subcell.pipeline.run.graph import downstream, topological_order
from subcell.pipeline.run.references import Literal, Reference, parse_input, parse_reference

SIM = """\
  sim:
    step: simulate
    config:
      tile_px: [32, 32]
      structures:
        - structure: {plugin: beads, count: [1, 2]}
          labelling: {plugin: volume}
"""


def error(write, registry, text, *overrides, force=()):
    """The one-line message loading (and planning) a pipeline raises; nothing is written."""
    path = write(text)
    with pytest.raises(ConfigError) as caught:
        make_plan(load_pipeline(path, overrides, registry=registry), force)
    message = str(caught.value)
    assert "\n" not in message
    assert not (path.parent / "runs").exists(), "validation wrote something"
    return message


def test_references_are_parsed_by_a_pattern_not_evaluated(tmp_path):
    assert parse_reference("${steps.sim.out}") == Reference("sim", None)
    assert parse_reference("${steps.sim-2.outputs.data}") == Reference("sim-2", "data")
    assert parse_reference("images/a.tif") is None
    for bad in ("${steps.sim}", "${__import__('os')}", "x${steps.sim.out}", "${steps.a.out}/b"):
        with pytest.raises(ConfigError, match="not a reference"):
            parse_reference(bad)
    assert parse_input("data/x.tif", tmp_path, "k") == Literal(tmp_path / "data" / "x.tif")


def test_graph_order_cycles_and_downstream():
    needs = {"a": set(), "b": {"a"}, "c": {"b"}, "d": {"a"}}
    assert topological_order(needs) == ["a", "b", "c", "d"]
    assert downstream(needs, ["b"]) == {"b", "c"}
    assert downstream(needs, ["a"]) == {"a", "b", "c", "d"}
    with pytest.raises(ConfigError, match=r"cycle: b -> c -> b"):
        topological_order({"a": set(), "b": {"c"}, "c": {"b"}})


def test_unknown_step_kind_names_the_registered_ones(write, registry):
    message = error(write, registry, "steps:\n  sim:\n    step: simulte\n")
    assert "steps.sim: step: unknown step kind 'simulte' (did you mean 'simulate'?)" in message
    assert "registered: " in message and "train" in message and "evaluate" in message


def test_reference_to_unknown_step_or_output(write, registry):
    message = error(
        write, registry, "steps:\n  a: {step: number}\n  b:\n    step: add\n    a: ${steps.c.out}\n"
    )
    assert "steps.b.a: ${steps.c.out}: no step 'c'; steps: a, b" in message
    message = error(
        write,
        registry,
        "steps:\n  a: {step: number}\n  b:\n    step: add\n    a: ${steps.a.outputs.vlaue}\n",
    )
    assert "step 'a' has no output 'vlaue' (did you mean 'value'?); its outputs: value" in message


def test_cycle_is_reported_as_a_path(write, registry):
    text = """\
    steps:
      a:
        step: add
        a: ${steps.b.out}
      b:
        step: add
        a: ${steps.a.outputs.sum}
    """
    assert "steps form a cycle: a -> b -> a" in error(write, registry, text)
    assert "cycle: a -> a" in error(
        write, registry, "steps:\n  a:\n    step: add\n    a: ${steps.a.out}\n"
    )


def test_bad_config_value_names_step_and_key_path(write, registry):
    text = "steps:\n" + SIM.replace("count: [1, 2]", "count: [1, x]")
    message = error(write, registry, text)
    assert "steps.sim.config:" in message
    assert "structures[0].structure.count[1]" in message
    message = error(write, registry, "steps:\n" + SIM.replace("tile_px", "tile_pix"))
    assert "steps.sim.config: tile_pix: unknown key (did you mean 'tile_px'?)" in message


def test_bad_config_file_value_names_the_file(write, registry, tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "train.yaml").write_text("step: train\nepochs: many\n")
    message = error(
        write,
        registry,
        "steps:\n  t:\n    step: train\n    config: configs/train.yaml\n    data: p.yaml\n",
    )
    assert "steps.t.config:" in message and "train.yaml: epochs: expected an integer" in message
    message = error(write, registry, "steps:\n  t:\n    step: train\n    config: nowhere.yaml\n")
    assert "steps.t.config:" in message and "nowhere.yaml: no such config file" in message
    (tmp_path / "configs" / "sim.yaml").write_text("step: simulate\n")
    message = error(
        write,
        registry,
        "steps:\n  t:\n    step: train\n    config: configs/sim.yaml\n    data: p.yaml\n",
    )
    assert "a simulate config; step train takes a train config" in message


def test_set_overrides_are_validated_like_the_file(write, registry):
    text = "steps:\n" + SIM
    assert "steps.sim.config: --set: n_tiles: expected an integer" in error(
        write, registry, text, "sim.n_tiles=lots"
    )
    message = error(write, registry, text, "sim.workers=0")
    assert "steps.sim: --set: workers: must be >= 1, got 0" in message
    message = error(write, registry, text, "simm.seed=1")
    assert "no step 'simm' (did you mean 'sim'?)" in message
    message = error(write, registry, text + "    set: {seed: x}\n")
    assert "steps.sim.config: set: seed: expected an integer" in message


def test_unknown_key_and_missing_input(write, registry):
    message = error(write, registry, "steps:\n  a: {step: number}\n  b: {step: add, offst: 1}\n")
    assert "steps.b: offst: unknown key (did you mean 'offset'?)" in message
    assert "add takes settings offset, inputs a, b, terms" in message
    message = error(write, registry, "steps:\n" + SIM, "sim.n_tile=3")
    assert "steps.sim: n_tile: unknown key (did you mean 'n_tiles'?)" in message
    assert "simulate takes settings workers, inputs (none) and the keys of its config" in message
    message = error(write, registry, "steps:\n" + SIM + "    n_tiles: 4\n")
    assert "steps.sim: n_tiles: a key of the step's simulate config; give it under set:" in message
    message = error(write, registry, "steps:\n  a: {step: number}\n  b: {step: add, offset: 1}\n")
    assert "steps.b: a: missing required input of add" in message
    message = error(write, registry, "steps:\n  b:\n    step: add\n    a: numbers/one.txt\n")
    assert "steps.b.a: " in message and "numbers/one.txt: no such file or directory" in message


def test_file_level_errors(write, registry):
    assert "outt: unknown key (did you mean 'out'?)" in error(
        write, registry, "outt: x\nsteps:\n  a: {step: number}\n"
    )
    assert "steps: expected a mapping" in error(write, registry, "steps: []\n")
    assert "steps.a: step: missing" in error(write, registry, "steps:\n  a: {value: 1}\n")
    assert "a step name is letters" in error(write, registry, "steps:\n  a/b: {step: number}\n")
    message = error(write, registry, "steps:\n  a: {step: number}\n", force=("b",))
    assert "--force b:" in message and "no step 'b'" in message


def test_foreign_files_in_a_step_folder_are_never_touched(write, registry, tmp_path):
    path = write("steps:\n  a: {step: number}\n")
    mine = tmp_path / "runs" / "p" / "a" / "precious.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("keep")
    with pytest.raises(ConfigError, match="holds files subcell run did not write"):
        load_pipeline(path, registry=registry)
    assert mine.read_text() == "keep"


def test_unquoted_reference_in_a_flow_mapping_gets_a_hint(write, registry):
    message = error(write, registry, "steps:\n  b: {step: add, a: ${steps.a.out}}\n")
    assert "not valid YAML" in message and 'quote references: {a: "${steps.NAME.out}"}' in message


def test_settings_from_a_file_name_the_file(write, registry, tmp_path):
    (tmp_path / "report.yaml").write_text("title: T\nscores: [miou, iou]\n")
    message = error(write, registry, "steps:\n  r:\n    step: report\n    config: report.yaml\n")
    assert "steps.r: " in message and "report.yaml: scores: must name scores among" in message
    message = error(
        write, registry, "steps:\n  r:\n    step: report\n    config: report.yaml\n", "r.text=1"
    )
    assert "steps.r: --set: text: expected a string, got int 1" in message
