"""Benchmarks that print their figures: the engine (:mod:`.engine`), the transport
(:mod:`.transport`), and the machine probe measured beside them (:mod:`.probe`)."""
