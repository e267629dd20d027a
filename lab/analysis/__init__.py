"""What a sweep says: intervals and tests (:mod:`.intervals`), scaling fits
(:mod:`.scaling`), the stage that saturated (:mod:`.bottleneck`), findings in words
(:mod:`.findings`). Pure functions on plain data."""
