"""The demo pipeline on embedded defaults: simulate, write, read, segment, measure, report."""

from subcell.pipeline.demo.run import run_demo

__all__ = ["run_demo"]
