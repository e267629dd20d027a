"""An emulated multi-node Ray cluster on one host.

Each node is its own raylet with its own CPUs, memory and object store
(``ray.cluster_utils.Cluster``), so calls between actors on different nodes
go through Ray's node-to-node path (object transfer between stores, remote
gRPC) exactly as on a real cluster, only over loopback. Node ``i`` carries
the custom resource ``lab_node_<i>`` so that placement can pin actors.
Everything is torn down on exit, also after a failure.
"""

import ray
from ray.cluster_utils import Cluster

from lab.config import Layout

__all__ = ["EmulatedCluster", "node_resource"]


def node_resource(index: int) -> str:
    """The custom resource that marks emulated node ``index``."""
    return f"lab_node_{index}"


class EmulatedCluster:
    #: The cluster this process started, if any (a sweep's runs share it).
    active: "EmulatedCluster | None" = None

    def __init__(self, layout: Layout):
        self.layout = layout
        self.cluster: Cluster | None = None

    def _node_args(self, index: int) -> dict:
        lay = self.layout
        return {
            "num_cpus": lay.cpus_per_node,
            "memory": lay.memory_mb_per_node * 1024 * 1024,
            "object_store_memory": lay.object_store_mb * 1024 * 1024,
            "resources": {node_resource(index): 1000},
        }

    def start(self) -> None:
        try:
            head = {**self._node_args(0), "include_dashboard": False}
            self.cluster = Cluster(initialize_head=True, head_node_args=head)
            for index in range(1, self.layout.nodes):
                self.cluster.add_node(**self._node_args(index))
            self.cluster.wait_for_nodes()
            ray.init(address=self.cluster.address, log_to_driver=False, configure_logging=False)
            EmulatedCluster.active = self
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        EmulatedCluster.active = None
        if ray.is_initialized():
            ray.shutdown()
        if self.cluster is not None:
            self.cluster.shutdown()
            self.cluster = None
