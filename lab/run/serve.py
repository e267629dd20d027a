"""``lab serve``: the platform alone (engine shards, backends and their gateways) until Ctrl-C.

Outside clients send the orders, with the keys of ``gateway.api_keys`` or
``LAB_API_KEYS``; the run's own key (the one load generators would use) is
never shown, so serving without a configured key is refused.
"""

import signal
from collections.abc import Callable

from lab.config.platform import API_KEYS_ENV, api_keys
from lab.errors import ConfigError
from lab.run.executor import open_executor
from lab.run.experiment import Experiment
from lab.store.result_store import new_run_id

__all__ = ["serve"]


def serve(experiment: Experiment, port: int | None, on_ready: Callable[[dict], None]) -> None:
    """Start the platform, tell ``on_ready`` where it answers, serve until interrupted."""
    config = experiment.config
    if port is not None:
        config = config.model_copy(
            update={"gateway": config.gateway.model_copy(update={"port": port})}
        )
    if not api_keys(config.gateway):
        raise ConfigError(
            f"lab serve needs at least one API key: gateway.api_keys in the config, "
            f'or {API_KEYS_ENV}=\'{{"KEY": "*"}}\' (key -> accounts it may trade)'
        )
    with open_executor(config, experiment.layout, new_run_id("serve"), serving=True) as executor:
        executor.wait_ready()
        urls = executor.gateway_urls
        on_ready(
            {
                "gateways": urls,
                "openapi": f"{urls[0]}/v1/openapi.json",
                "docs": f"{urls[0]}/v1/docs",
                "dashboard": executor.dashboard_url(),
            }
        )
        # Ctrl-C or a TERM ends it, even where the shell started it with SIGINT ignored.
        previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            executor.serve()
        except KeyboardInterrupt:
            pass  # the executor's exit removes every stage
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _interrupt(signum, frame):
    raise KeyboardInterrupt
