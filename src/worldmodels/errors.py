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


class EnvError(WMError):
    """An environment that returned something unusable, such as a NaN observation or reward."""


def one_line(err: BaseException, limit: int = 300) -> str:
    """An exception's text on one line: a heading that ends in ':' keeps its first detail (torch's
    `load_state_dict` errors), the rest is counted; cut at a word boundary past `limit` characters."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    text, rest = lines[0], lines[1:]
    if text.endswith(":") and rest:
        text, rest = f"{text} {rest[0]}", rest[1:]
    if rest:
        text += f" (and {len(rest)} more line{'s' if len(rest) > 1 else ''})"
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " …"
    return text


def process_failure(what: str, returncode: int, stderr: str) -> TrainingError:
    """The error of a child process that ended with `returncode`: its last line on stderr, or the signal that
    stopped it (a cell killed from outside, or by the system for memory), which writes nothing there."""
    last = stderr.strip().splitlines()[-1:]
    if last:
        why = last[0].strip()
    elif returncode < 0:
        why = f"stopped by signal {-returncode} (killed from outside, or by the system for want of memory)"
    else:
        why = f"exit status {returncode} with nothing on stderr"
    return TrainingError(f"{what} failed: {why}")


def closest(name: str, options: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest option, or '' when nothing is close."""
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""
