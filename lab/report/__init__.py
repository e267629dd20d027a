"""Showing results: the terminal (:mod:`.console`), PNG plots (:mod:`.plots`,
:mod:`.capacity_plot`) and one self-contained HTML page (:mod:`.html`)."""
