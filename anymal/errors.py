"""One exception hierarchy for everything anymal raises on purpose.

Every error names the thing that was wrong (a file, a field, a plugin) and what was expected, so that a batch job
that fails says why without a debugger. Catch ``AnyMALError`` to catch them all.
"""

from __future__ import annotations


class AnyMALError(Exception):
    """Base class of all anymal errors."""


class ConfigError(AnyMALError, ValueError):
    """A config field has a wrong type, an unknown key or an invalid value."""


class PluginError(AnyMALError, LookupError):
    """A plugin is unknown, registered twice, or failed to load."""


class InputError(AnyMALError, ValueError):
    """A user input (media file, array, prompt) cannot be used as given."""


class CheckpointError(AnyMALError, RuntimeError):
    """A checkpoint is missing, corrupt, or does not match the base models it references."""


class DataError(AnyMALError, ValueError):
    """A dataset row is malformed; the message names the file and line."""
