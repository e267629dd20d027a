"""User-facing errors.

The CLI prints their message, without a traceback, and exits with their code.
"""

__all__ = ["LabError", "ConfigError", "InputError", "ThresholdError", "RunFailed"]


class LabError(Exception):
    """An error caused by the user's input or environment, not by a bug."""

    exit_code = 1


class ConfigError(LabError):
    """A malformed or invalid experiment config."""

    exit_code = 2


class InputError(LabError):
    """A malformed input file or argument (for example a bad CSV row)."""

    exit_code = 2


class ThresholdError(LabError):
    """A run finished but missed one of its configured thresholds."""

    exit_code = 99


class RunFailed(LabError):
    """A run that could not finish; ``partial`` holds what it measured before it failed.

    ``Experiment.run`` turns ``partial`` into a stored result with ``status:
    failed`` and replaces it with that result's dict.
    """

    exit_code = 1

    def __init__(self, message: str, partial: dict | None = None):
        super().__init__(message)
        self.partial = partial or {}
