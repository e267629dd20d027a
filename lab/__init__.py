"""The scaling lab: experiment configs, runs, sweeps, results and reports.

``from lab import Experiment`` is the Python API; heavy imports (Ray) wait
until first use so that ``lab replay`` and ``lab --help`` start fast.
"""

__all__ = ["Experiment", "Result", "load_config", "sweep"]


def __getattr__(name):
    if name == "Experiment":
        from lab.experiment import Experiment

        return Experiment
    if name == "Result":
        from lab.result import Result

        return Result
    if name == "sweep":
        from lab.sweep import sweep

        return sweep
    if name == "load_config":
        from lab.config import load_config

        return load_config
    raise AttributeError(f"module 'lab' has no attribute {name!r}")
