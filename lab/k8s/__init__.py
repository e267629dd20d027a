"""KubeRay: rendering manifests for a layout (:mod:`.render`), the services beside them
(:mod:`.services`), pod sizing (:mod:`.sizing`), policies (:mod:`.policy`), and validating
everything against the CRDs (:mod:`.validate`)."""
