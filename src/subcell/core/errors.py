"""Errors a user can cause and fix: reported as one line, exit status 2."""


class SubcellError(Exception):
    """A user error: bad path, bad config, bad input. The CLI prints one line, no traceback."""


class ConfigError(SubcellError):
    """A config that does not validate: the message names the file and the key path."""


class PluginError(SubcellError):
    """An unknown, duplicate or malformed plugin registration."""


class VolumeError(SubcellError):
    """An image or volume that cannot be read, has the wrong shape, or holds NaN/inf."""
