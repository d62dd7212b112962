"""The demo pipeline on embedded defaults (demo.yaml): simulate, segment, score, measure, report."""

from subcell.pipeline.demo.run import run_demo

__all__ = ["run_demo"]
