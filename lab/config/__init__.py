"""The experiment config: typed models (:mod:`.models`) and how files, the environment
and ``--set`` flags become one (:mod:`.loader`)."""

from lab.config.loader import (
    ENV_PREFIX,
    config_from_dict,
    for_layout,
    load_config,
    with_overrides,
)
from lab.config.models import *  # noqa: F403  (the models are this package's vocabulary)
from lab.config.models import __all__ as _models

__all__ = [
    *_models,
    "ENV_PREFIX",
    "load_config",
    "with_overrides",
    "for_layout",
    "config_from_dict",
]
