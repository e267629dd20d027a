"""Where each actor of a run goes, from the layout's placement policy."""

from lab.config import Layout
from lab.layouts.emulated import node_resource

__all__ = ["Placement"]


class Placement:
    """Ray scheduling options for each actor, from the layout's placement policy.

    On an emulated cluster actors are pinned through the nodes' custom
    resources: ``pack`` puts every actor on node 0, ``spread`` deals them out
    round-robin in creation order, ``explicit`` follows the layout's mapping
    (actor kind -> node indices, used in turn). Elsewhere ``spread`` asks Ray
    to spread and ``pack`` leaves Ray's default packing policy.
    """

    def __init__(self, layout: Layout):
        self.layout = layout
        self._dealt = 0

    def node(self, kind: str, index: int) -> int | None:
        """The emulated node the next actor of ``kind`` goes to (None on other layouts).

        Call it once per actor, in creation order: ``spread`` deals in turn.
        """
        lay = self.layout
        if lay.kind != "emulated":
            return None
        config_kind = {"loadgen": "generator"}.get(kind, kind)
        if lay.placement == "explicit" and config_kind in (lay.explicit or {}):
            nodes = lay.explicit[config_kind]
            return nodes[index % len(nodes)]
        if lay.placement == "spread":
            self._dealt += 1
            return (self._dealt - 1) % lay.nodes
        return 0

    def options(self, kind: str, index: int) -> dict:
        node = self.node(kind, index)
        if node is not None:
            return {"resources": {node_resource(node): 1}}
        if self.layout.placement == "spread":
            return {"scheduling_strategy": "SPREAD"}
        return {}
