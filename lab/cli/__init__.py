"""The ``lab`` command line (:mod:`.main`; the ``k8s`` commands in :mod:`.k8s`)."""
