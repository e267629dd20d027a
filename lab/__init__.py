"""The scaling lab: experiment configs, runs, sweeps, results and reports.

``from lab import Experiment`` is the Python API; heavy imports (Ray) wait
until first use so that ``lab replay`` and ``lab --help`` start fast.
"""

__all__ = ["Experiment", "Result", "load_config", "sweep", "capacity_search"]


def __getattr__(name):
    if name == "Experiment":
        from lab.run.experiment import Experiment

        return Experiment
    if name == "Result":
        from lab.run.result import Result

        return Result
    if name == "sweep":
        from lab.run.sweep import sweep

        return sweep
    if name == "load_config":
        from lab.config.loader import load_config

        return load_config
    if name == "capacity_search":
        from lab.run.capacity import capacity_search

        return capacity_search
    raise AttributeError(f"module 'lab' has no attribute {name!r}")
