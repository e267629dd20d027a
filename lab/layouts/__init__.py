"""Layouts that need more than a plain Ray: emulated nodes on one host (:mod:`.emulated`),
each in its own network namespace (:mod:`.netns`)."""
