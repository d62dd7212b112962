"""Make-like reuse, --force, dry runs, interrupted steps and parallel runs (cheap test steps)."""

import json

import pytest

from subcell.core.errors import ConfigError, SubcellError
from subcell.pipeline.run import load_pipeline, make_plan, read_record, run_pipeline, trace
from subcell.pipeline.run.records import content_sha256

GRAPH = """\
steps:
  one: {step: number, value: 1}
  two: {step: number, value: 2}
  sum:
    step: add
    a: ${steps.one.out}
    b: ${steps.two.outputs.value}
  total:
    step: add
    offset: 100
    a: ${steps.sum.out}
    terms:
      - ${steps.one.out}
      - ${steps.two.out}
  lone: {step: number, value: 7}
"""


def run(path, registry, *overrides, force=(), workers=1):
    pipeline = load_pipeline(path, overrides, registry=registry)
    return run_pipeline(pipeline, force=force, workers=workers, registry=registry)


def ran(result) -> set[str]:
    return set(result.seconds)


def reasons(path, registry, *overrides, force=()):
    plan = make_plan(load_pipeline(path, overrides, registry=registry), force)
    return {s.name: (s.action, s.reason) for s in plan.steps}


def test_first_run_runs_everything_and_the_second_reuses_everything(write, registry, tmp_path):
    path = write(GRAPH)
    first = run(path, registry)
    assert ran(first) == {"one", "two", "sum", "total", "lone"}
    out = tmp_path / "runs" / "p"
    assert (out / "sum" / "sum.txt").read_text() == "3\n"
    assert (out / "total" / "sum.txt").read_text() == "106\n"  # 3 + 1 + 2 + 100
    assert (out / "total" / "log.txt").read_text() == "a terms\n"
    record = read_record(out / "total")
    assert record["complete"] is True and record["step"] == "add"
    assert set(record["inputs"]["terms"]["items"]) == {"one", "two"}
    assert record["inputs"]["a"]["sha256"] == read_record(out / "sum")["outputs"]["sum"]["sha256"]
    assert record["outputs"]["sum"]["sha256"] == content_sha256(out / "total" / "sum.txt")
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    second = run(path, registry)
    assert ran(second) == set()
    assert {s.reason for s in second.plan.steps} == {"up to date"}
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_one_changed_parameter_reruns_exactly_its_downstream(write, registry):
    path = write(GRAPH)
    run(path, registry)
    plan = reasons(path, registry, "two.value=5")
    assert plan == {
        "one": ("reuse", "up to date"),
        "two": ("run", "config changed"),
        "sum": ("run", "input changed"),
        "total": ("run", "input changed"),
        "lone": ("reuse", "up to date"),
    }
    result = run(path, registry, "two.value=5")
    assert ran(result) == {"two", "sum", "total"}
    assert (path.parent / "runs" / "p" / "total" / "sum.txt").read_text() == "112\n"
    # An input can be rewired from the command line too.
    plan = reasons(path, registry, "two.value=5", "sum.b=${steps.lone.out}")
    assert plan["sum"] == ("run", "input changed") and plan["two"] == ("reuse", "up to date")
    # A setting marked hash: False changes nothing.
    assert ran(run(path, registry, "two.value=5", "two.note=hello")) == set()
    # Back to the first value: those three rerun again, the rest stays.
    assert ran(run(path, registry)) == {"two", "sum", "total"}


def test_force_reruns_the_step_and_its_downstream(write, registry):
    path = write(GRAPH)
    run(path, registry)
    plan = reasons(path, registry, force=("sum",))
    assert plan["sum"] == ("run", "forced") and plan["total"] == ("run", "input changed")
    assert ran(run(path, registry, force=("sum",))) == {"sum", "total"}
    assert ran(run(path, registry, force=("one", "lone"))) == {"one", "sum", "total", "lone"}


def test_dry_run_writes_nothing_and_says_why(write, registry, tmp_path):
    path = write(GRAPH)
    plan = make_plan(load_pipeline(path, registry=registry))
    assert {s.reason for s in plan.steps} == {"no output"}
    assert plan.to_run == ["one", "two", "sum", "total", "lone"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"]
    from rich.console import Console

    console = Console(record=True, width=100)
    console.print(plan.table())
    text = console.export_text()
    assert "no output" in text and "total" in text and "add" in text


def test_a_deleted_output_reruns_the_step_and_a_deleted_record_is_refused(
    write, registry, tmp_path
):
    path = write(GRAPH)
    run(path, registry)
    out = tmp_path / "runs" / "p"
    (out / "lone" / "value.txt").unlink()
    plan = reasons(path, registry)
    assert plan["lone"] == ("run", "no output")
    assert {n for n, (action, _) in plan.items() if action == "run"} == {"lone"}
    (out / "one" / "subcell-step.json").unlink()
    # Without its record the folder is no longer known to be ours: never cleared.
    with pytest.raises(ConfigError, match="runs/p/one holds files subcell run did not write"):
        load_pipeline(path, registry=registry)


def test_an_interrupted_step_is_not_complete_and_resumes_in_its_folder(
    write, registry, tmp_path, crash_step
):
    path = write(
        'steps:\n  one: {step: number, value: 1}\n  c: {step: crash, a: "${steps.one.out}"}\n'
    )
    with pytest.raises(KeyboardInterrupt):
        run(path, registry)
    folder = tmp_path / "runs" / "p" / "c"
    record = read_record(folder)
    assert record["complete"] is False and "outputs" not in record
    assert (folder / "part.txt").is_file()
    assert read_record(tmp_path / "runs" / "p" / "one")["complete"] is True
    assert reasons(path, registry) == {"one": ("reuse", "up to date"), "c": ("run", "interrupted")}
    crash_step.CRASH = False
    assert ran(run(path, registry)) == {"c"}
    assert (folder / "result.txt").read_text() == "1 resumed=True\n"
    assert read_record(folder)["complete"] is True
    assert ran(run(path, registry)) == set()


def test_an_interrupted_step_with_another_config_starts_afresh(
    write, registry, tmp_path, crash_step
):
    path = write("steps:\n  c: {step: crash, value: 1}\n")
    with pytest.raises(KeyboardInterrupt):
        run(path, registry)
    crash_step.CRASH = False
    assert ran(run(path, registry, "c.value=2")) == {"c"}
    assert (tmp_path / "runs" / "p" / "c" / "result.txt").read_text() == "2 resumed=False\n"


def test_a_failing_step_keeps_what_finished_before_it(write, registry, tmp_path):
    path = write('steps:\n  a: {step: number, value: 3}\n  b: {step: add, a: "${steps.a.out}"}\n')
    pipeline = load_pipeline(path, registry=registry)
    broken = pipeline.steps["b"].step
    broken.run = lambda inputs, out: {"sum": out / "missing.txt", "log": out}
    with pytest.raises(SubcellError, match="step 'b' \\(add\\): .*output 'sum' .* is missing"):
        run_pipeline(pipeline, registry=registry)
    assert read_record(tmp_path / "runs" / "p" / "a")["complete"] is True
    assert read_record(tmp_path / "runs" / "p" / "b")["complete"] is False


def test_parallel_runs_give_the_same_outputs_as_sequential(write, registry, tmp_path):
    path = write(GRAPH)
    sequential = run_pipeline(
        load_pipeline(path, out=tmp_path / "seq", registry=registry), registry=registry
    )
    parallel = run_pipeline(
        load_pipeline(path, out=tmp_path / "par", registry=registry), workers=3, registry=registry
    )
    assert ran(parallel) == ran(sequential) == {"one", "two", "sum", "total", "lone"}
    for name, record in sequential.records.items():
        assert parallel.records[name]["outputs"] == record["outputs"], name
        assert parallel.records[name]["config_sha256"] == record["config_sha256"]


def test_trace_follows_records_and_notices_reruns(write, registry, tmp_path):
    path = write(GRAPH)
    run(path, registry)
    out = tmp_path / "runs" / "p"
    node = trace(out / "total" / "sum.txt")
    assert (node.name, node.step) == ("total", "add")
    links = {link.input: link for link in node.inputs}
    assert set(links) == {"a", "terms.one", "terms.two"}
    assert links["a"].source.name == "sum" and links["a"].status == "same"
    assert {n.name for n in node.find("number")} == {"one", "two"}
    assert json.loads((out / "total" / "subcell-step.json").read_text())["name"] == "total"
    # Another pipeline sharing the folder reruns 'sum' alone: the link from total says so.
    head = GRAPH[: GRAPH.index("  total:")]
    other = write("out: runs/p\n" + head.replace("b: ${steps.two", "b: ${steps.one"), "q.yaml")
    assert ran(run(other, registry)) == {"sum"}
    assert {link.input: link.status for link in trace(out / "total").inputs}["a"] == "changed"
    with pytest.raises(SubcellError, match="not inside a step folder"):
        trace(tmp_path / "p.yaml")
