"""Errors a user can cause. Each carries one line that names the problem and the fix.

The CLI prints the message without a traceback and exits with `exit_code`:
2 for bad usage or configuration, 1 for failures at run time.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class WMError(Exception):
    """Base class of the errors the CLI reports as one clear line."""

    exit_code = 1


class ConfigError(WMError):
    """A bad config key, type or value, an unknown component or environment id."""

    exit_code = 2


class CheckpointError(WMError):
    """A checkpoint that is missing, corrupt, tampered with or not ours."""


class TrainingError(WMError):
    """A run-time failure of training, such as a non-finite loss."""


def closest(name: str, options: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest option, or '' when nothing is close."""
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""
