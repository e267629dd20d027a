"""lab.run.fit: a topology that cannot fit its cluster fails before any actor starts,
naming the shortfall and the settings that change it."""

import pytest

from lab.config import for_layout, load_config
from lab.layouts.emulated import node_resource
from lab.run.fit import ResourceError, actors_of, check_fit
from lab.run.placement import Placement

QUICKSTART = "configs/quickstart.yaml"


def fit(overrides, cluster, nodes=None, layout="single-host"):
    config = for_layout(load_config(QUICKSTART, overrides), layout)
    lay = config.layout(layout)
    check_fit(config, lay, cluster, nodes or [cluster], Placement(lay))


def test_the_quickstart_fits_two_cpus():
    fit([], {"CPU": 2.0, "memory": 8 << 30})


def test_eight_backends_on_two_cpus_fail_naming_the_shortfall_and_the_settings():
    with pytest.raises(ResourceError) as info:
        fit(["topology.backends=8"], {"CPU": 2.0})
    message = str(info.value)
    # 2 engines x 0.5 + 8 backends x 0.25 + 1 generator x 0.25 = 3.25
    assert "needs 3.25 CPUs (2 engine × 0.5, 8 backend × 0.25, 1 loadgen × 0.25)" in message
    assert "the cluster has 2, 1.25 short" in message
    assert "resources.<kind>.num_cpus" in message and "topology.engines" in message
    assert info.value.exit_code == 2


def test_one_actor_bigger_than_any_node_fails():
    with pytest.raises(ResourceError, match="one backend asks for 4 CPUs but the largest node"):
        fit(["resources.backend.num_cpus=4"], {"CPU": 16.0}, nodes=[{"CPU": 2.0}] * 8)


def test_memory_is_checked_too():
    with pytest.raises(ResourceError, match="needs 20,000 MB of memory"):
        fit(["resources.engine.memory_mb=10000"], {"CPU": 2.0, "memory": 4 << 30})


def test_emulated_nodes_are_checked_one_by_one_under_the_placement():
    nodes = [{"CPU": 1.0, node_resource(i): 1000.0} for i in range(3)]
    cluster = {"CPU": 3.0}
    fit([], cluster, nodes, layout="three-node")  # spread: 6 actors over 3 nodes of 1 CPU
    # 2 engines x 1 CPU, dealt to nodes 0 and 1 with a backend each: 1.25 CPUs there,
    # although the whole (2.75) fits the cluster's 3.
    with pytest.raises(ResourceError, match="emulated node 0 gets 1.25 CPUs .* 'spread'"):
        fit(["resources.engine.num_cpus=1"], cluster, nodes, "three-node")


def test_actors_are_listed_in_the_order_the_pipeline_starts_them():
    config = load_config(QUICKSTART)
    kinds = [kind for kind, *_ in actors_of(config)]
    assert kinds == ["engine", "engine", "backend", "backend", "loadgen", "collector"]
