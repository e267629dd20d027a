"""describe_environment: what a run records about its machine."""

import json
import platform

import numpy as np

from lab.run.environment import PACKAGES, describe_environment


def test_describes_python_packages_and_machine():
    info = describe_environment()
    assert info["python"] == platform.python_version()
    assert set(info["packages"]) == set(PACKAGES)
    assert info["packages"]["numpy"] == np.__version__
    assert isinstance(info["cpu_model"], str) and info["cpu_model"]
    assert info["cpu_count"] >= 1 and 1 <= info["usable_cpus"] <= info["cpu_count"]
    assert info["memory_total_mb"] > 0
    assert info["hostname"] and info["platform"]


def test_missing_package_has_no_version(monkeypatch):
    monkeypatch.setattr("lab.run.environment.PACKAGES", ("numpy", "surely-not-installed-xyz"))
    packages = describe_environment()["packages"]
    assert packages == {"numpy": np.__version__, "surely-not-installed-xyz": None}


def test_is_json_able():
    info = describe_environment()
    assert json.loads(json.dumps(info)) == info
