"""Where runs, sweeps and capacity searches are kept (:mod:`.result_store`)."""

from lab.store.result_store import ResultStore, new_run_id

__all__ = ["ResultStore", "new_run_id"]
