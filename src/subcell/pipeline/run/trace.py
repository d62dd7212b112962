"""Provenance chains: from any output back through the records of what it was made from.

``trace(path)`` finds the step folder holding ``path``, reads its record, and follows each
input's record (``../STEP/subcell-step.json``) up to the steps that took no step's output:
a segmentation leads to its model, the model to its training data, the data to the
simulation config that made it. Each link says whether the upstream output is still the one
the step was made from (its recorded hash against the upstream record's).
"""

from __future__ import annotations

from pathlib import Path

import attrs

from subcell.core.errors import SubcellError
from subcell.pipeline.run.records import find_record, read_record

__all__ = ["TraceLink", "TraceNode", "trace", "trace_tree"]


@attrs.frozen(eq=False)
class TraceLink:
    """One input of a traced step.

    Attributes
    ----------
    input
        The input's name (``name.label`` for one item of a ``many`` input).
    path
        The input path the step read.
    sha256
        The hash the step recorded for it.
    status
        ``"same"`` (the upstream output still has that hash), ``"changed"`` (rerun since),
        ``"missing"`` (no upstream record) or ``"file"`` (a path no step made).
    source
        The upstream step's node, None for a file or a missing record.
    """

    input: str
    path: str
    sha256: str
    status: str
    source: TraceNode | None


@attrs.frozen(eq=False)
class TraceNode:
    """A step's record in a chain.

    Attributes
    ----------
    folder
        The step folder.
    name, step
        The step's name and kind.
    complete
        Whether its record is complete.
    config_sha256
        Hash of its resolved config (what reuse compares).
    command_config_sha256
        Hash of its command config where it has one: for ``simulate``, the
        ``config_sha256`` the dataset itself records.
    outputs
        Output name -> hash.
    inputs
        One link per input.
    record
        The whole record.
    """

    folder: Path
    name: str
    step: str
    complete: bool
    config_sha256: str
    command_config_sha256: str | None
    outputs: dict[str, str]
    inputs: tuple[TraceLink, ...]
    record: dict

    def find(self, step: str) -> list[TraceNode]:
        """Every node of kind ``step`` in the chain (this one included), nearest first."""
        found, seen, queue = [], set(), [self]
        while queue:
            node = queue.pop(0)
            if node.folder in seen:
                continue  # reached again through another input
            seen.add(node.folder)
            found += [node] if node.step == step else []
            queue += [link.source for link in node.inputs if link.source is not None]
        return found


def trace(path: str | Path) -> TraceNode:
    """The provenance chain of an output, a step folder or a record file.

    Raises
    ------
    SubcellError
        ``path`` is not inside a step folder of ``subcell run``.
    """
    path = Path(path)
    if not path.exists():
        raise SubcellError(f"{path}: no such file or directory")
    folder = find_record(path.parent if path.name == "subcell-step.json" else path)
    if folder is None:
        raise SubcellError(
            f"{path}: not inside a step folder of subcell run (no subcell-step.json)"
        )
    return _node(folder, set())


def _node(folder: Path, seen: set[Path]) -> TraceNode:
    record = read_record(folder) or {}
    seen = seen | {folder}
    links: list[TraceLink] = []
    for name, entry in (record.get("inputs") or {}).items():
        items = entry["items"].items() if "items" in entry else [(None, entry)]
        for label, item in items:
            links.append(_link(folder, name if label is None else f"{name}.{label}", item, seen))
    return TraceNode(
        folder=folder,
        name=str(record.get("name")),
        step=str(record.get("step")),
        complete=bool(record.get("complete")),
        config_sha256=str(record.get("config_sha256")),
        command_config_sha256=record.get("command_config_sha256"),
        outputs={k: v.get("sha256") for k, v in (record.get("outputs") or {}).items()},
        inputs=tuple(links),
        record=record,
    )


def _link(folder: Path, name: str, entry: dict, seen: set[Path]) -> TraceLink:
    path, sha = str(entry.get("path")), str(entry.get("sha256"))
    if "record" not in entry:
        return TraceLink(name, path, sha, "file", None)
    upstream = (folder / entry["record"]).parent.resolve()
    record = read_record(upstream)
    if record is None or upstream in seen:
        return TraceLink(name, path, sha, "missing", None)
    current = ((record.get("outputs") or {}).get(entry.get("output")) or {}).get("sha256")
    status = "same" if current == sha and record.get("complete") else "changed"
    return TraceLink(name, path, sha, status, _node(upstream, seen))


def trace_tree(node: TraceNode):
    """The chain as a rich tree (step, kind, hashes; each input and its status)."""
    from rich.tree import Tree

    def label(n: TraceNode) -> str:
        digest = n.command_config_sha256
        command = f", command config {digest[:12]}" if digest else ""
        state = "" if n.complete else " [red](incomplete)[/red]"
        outputs = ", ".join(f"{k} {v[:12]}" for k, v in n.outputs.items() if v)
        return (
            f"[bold]{n.name}[/bold] ({n.step}) config {n.config_sha256[:12]}{command}{state}"
            f"\n[dim]{n.folder}[/dim]" + (f"\noutputs: {outputs}" if outputs else "")
        )

    def add(tree, n: TraceNode) -> None:
        for link in n.inputs:
            colour = {"same": "green", "file": "cyan"}.get(link.status, "red")
            text = f"{link.input} ← [{colour}]{link.status}[/{colour}] {link.sha256[:12]}"
            if link.source is None:
                tree.add(f"{text} {link.path}")
            else:
                branch = tree.add(f"{text}\n{label(link.source)}")
                add(branch, link.source)

    root = Tree(label(node))
    add(root, node)
    return root
