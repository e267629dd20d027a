"""A run's journal as files: what each engine shard processed, and what came of it.

Each shard hands back its journal as arrays (``EngineShard.journal_arrays``);
this writes them in ``lab replay``'s formats, one set of files per shard:
``engine-0-orders.csv`` (exactly the messages it processed, which ``lab
replay`` turns back into the same trades, book and rejects) and the
``-trades``, ``-book`` and ``-rejects`` CSVs the run produced from them.
"""

from pathlib import Path

from lab.replay.orders_csv import write_orders_csv
from lab.replay.run import write_replay_outputs

__all__ = ["write_journal"]


def write_journal(journal: dict, directory) -> dict[str, str]:
    """Write one shard's journal into ``directory``; the paths, by kind."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    name = journal["name"]
    paths = {
        kind: str(out / f"{name}-{kind}.csv") for kind in ("orders", "trades", "book", "rejects")
    }
    write_orders_csv(paths["orders"], journal["messages"], journal["symbols"])
    write_replay_outputs(
        paths["trades"],
        paths["book"],
        paths["rejects"],
        reports=journal["reports"],
        book=journal["book"],
        symbols=journal["symbols"],
    )
    return paths
