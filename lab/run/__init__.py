"""The run machinery: an experiment on a layout (:mod:`.experiment`), the stages it
starts (:mod:`.pipeline`) on an executor (:mod:`.executor`), what it measured
(:mod:`.result`), sweeps (:mod:`.sweep`) and capacity searches (:mod:`.capacity`)."""
