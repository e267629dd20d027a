"""The Ray a layout's runs need: started on this host, emulated, or joined.

``RayRuntime`` is what :func:`lab.run.executor.runtime_for` gives every
layout but ``inprocess`` (which needs no Ray):

- ``local``: starts Ray on this host (or, under ``ray job submit``, joins the
  job's cluster);
- ``emulated``: starts N raylets on this host (:mod:`lab.layouts.emulated`), with
  ``netns: true`` each in its own network namespace (:mod:`lab.layouts.netns`);
- ``cluster`` and ``kuberay``: joins a running cluster (``address``, else
  ``RAY_ADDRESS``, else ``auto``); a ``kuberay`` layout runs this way inside
  the RayCluster that ``lab k8s render`` describes.

A Ray that the caller already started (a test session, a notebook) is reused
for every kind but ``emulated``, which needs a cluster of its own.
"""

import os

import ray

from lab.config import Layout
from lab.errors import LabError
from lab.layouts.emulated import EmulatedCluster
from lab.layouts.netns import NetnsCluster

__all__ = ["RayRuntime"]

_QUIET = {"log_to_driver": False, "configure_logging": False}


class RayRuntime:
    def __init__(self, layout: Layout):
        self.layout = layout
        self._started = False
        self._emulated: EmulatedCluster | None = None

    def start(self) -> None:
        kind = self.layout.kind
        if ray.is_initialized():
            if kind == "emulated" and EmulatedCluster.active is None:
                raise LabError(
                    "an emulated layout starts its own Ray cluster, but Ray is "
                    "already initialized in this process"
                )
            return
        if kind == "emulated":
            # `netns: true` puts each node in its own network namespace (needs root).
            cluster = NetnsCluster if self.layout.netns else EmulatedCluster
            self._emulated = cluster(self.layout)
            self._emulated.start()
        elif kind == "local" and not os.environ.get("RAY_ADDRESS"):
            # The dashboard stays on (Ray's default) so runs can be watched there.
            ray.init(object_store_memory=self.layout.object_store_mb * 1024 * 1024, **_QUIET)
            self._started = True
        else:
            address = self.layout.address or os.environ.get("RAY_ADDRESS") or "auto"
            try:
                ray.init(address=address, **_QUIET)
            except ConnectionError as exc:
                hint = (
                    " (a kuberay layout runs inside its RayCluster: see `lab k8s render`)"
                    if kind == "kuberay"
                    else ""
                )
                raise LabError(
                    f"cannot reach the Ray cluster at {address!r}: {exc}{hint}"
                ) from None

    def stop(self) -> None:
        if self._emulated is not None:
            self._emulated.stop()
            self._emulated = None
        if self._started:
            ray.shutdown()
            self._started = False

    def __enter__(self) -> "RayRuntime":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
