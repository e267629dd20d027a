"""Replaying order files through the engine (:mod:`.run`), the CSV formats
(:mod:`.orders_csv`, :mod:`.csv_format`) and a run's journal as files (:mod:`.journal`)."""
