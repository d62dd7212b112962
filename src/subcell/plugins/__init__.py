"""Built-in plugins, one package per domain object.

Each is registered through the ``subcell.plugins`` entry-point group exactly like a
third-party package, and may import only :mod:`subcell.core`.
"""
