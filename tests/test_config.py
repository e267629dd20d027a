"""The experiment config: defaults, validation messages, precedence and includes."""

import json
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from lab.config import (
    ActorResources,
    ExperimentConfig,
    Layout,
    config_from_dict,
    load_config,
    with_overrides,
)
from lab.errors import ConfigError

CONFIG = "configs/x.yaml"


@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path, monkeypatch):
    """Every test runs in an empty directory with a ``configs/`` folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()


def write(path: str, text: str) -> str:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(textwrap.dedent(text))
    return path


def load(text: str, overrides=(), env=None) -> ExperimentConfig:
    return load_config(write(CONFIG, text), overrides, env={} if env is None else env)


def error_of(text: str, overrides=(), env=None) -> str:
    with pytest.raises(ConfigError) as info:
        load(text, overrides, env)
    return str(info.value)


# -- defaults and a full file ---------------------------------------------------


def test_empty_file_gives_the_defaults():
    config = load("")
    assert config == ExperimentConfig()
    assert config.experiment.duration_s == 10 and config.experiment.warmup_s == 2
    assert config.experiment.measured_s == 8
    assert config.workload.rate == "max" and config.workload.closed_loop
    assert config.workload.mix.limit == 0.6 and config.workload.stp == "none"
    assert config.workload.order_flow.price_levels == 50
    assert config.topology.batch_size == 4096 and not config.topology.noop
    assert config.resources.engine.num_cpus == 0.5
    assert config.resources.backend.num_cpus == 0.25
    assert config.resources.collector.num_cpus == 0
    assert config.results.url == "sqlite:///results/lab.sqlite"
    assert config.thresholds.p99_ms is None
    assert config.layouts == {"single-host": Layout(kind="local")}
    assert config.source == CONFIG


def test_a_full_file_is_read():
    config = load(
        """
        experiment: {name: big, duration_s: 30, warmup_s: 5, seed: 7}
        workload:
          symbols: 64
          rate: 250000
          order_flow: {mid_price: 5000, price_levels: 20, price_decay: 0.8, max_qty: 10}
          mix: {limit: 0.5, market: 0.1, ioc: 0.1, cancel: 0.2, modify: 0.1}
          stp: cancel-newest
        topology: {engines: 4, backends: 8, generators: 2, noop: true, journal: true}
        risk: {max_order_rate: 1e4}
        resources: {engine: {num_cpus: 1, memory_mb: 512}}
        results: {url: "postgresql://postgres@127.0.0.1/test"}
        thresholds: {p99_ms: 5, min_orders_per_s: 1e5, max_errors: 0}
        layouts:
          four: {kind: emulated, nodes: 4, placement: explicit, explicit: {engine: [0, 1]}}
        """
    )
    assert config.experiment.name == "big" and config.experiment.seed == 7
    assert config.workload.rate == 250000.0 and not config.workload.closed_loop
    assert config.workload.order_flow.price_decay == 0.8
    assert config.workload.stp == "cancel-newest"
    assert (config.topology.engines, config.topology.backends) == (4, 8)
    assert config.risk.max_order_rate == 1e4
    assert config.resources.engine.ray_options() == {"num_cpus": 1.0, "memory": 512 * 2**20}
    assert config.thresholds.min_orders_per_s == 1e5 and config.thresholds.max_errors == 0
    assert config.layout("four").explicit == {"engine": [0, 1]}


def test_null_section_means_defaults():
    assert load("topology:\nrisk:\n") == ExperimentConfig()


def test_partial_resources_keep_their_kind_default_cpus():
    config = load("resources: {backend: {memory_mb: 256}, generator: {num_cpus: 2}}")
    assert config.resources.backend == ActorResources(num_cpus=0.25, memory_mb=256)
    assert config.resources.for_kind("generator").num_cpus == 2
    assert config.resources.engine.num_cpus == 0.5


def test_tick_spread_is_a_synonym_of_price_levels():
    assert load("workload: {order_flow: {tick_spread: 7}}").workload.order_flow.price_levels == 7


def test_config_is_immutable():
    with pytest.raises(ValidationError):
        ExperimentConfig().topology.engines = 3  # type: ignore[misc]


# -- one message line per problem, naming file and key --------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("topology: {backnds: 4}", "topology.backnds: unknown key (did you mean 'backends'?)"),
        ("colour: red", "colour: unknown key"),
        ("topology: {backends: eight}", "topology.backends: expected an integer, got 'eight'"),
        ("topology: {backends: 2.5}", "topology.backends: expected an integer, got 2.5"),
        ("topology: {backends: true}", "topology.backends: expected an integer, got true"),
        ("topology: {backends: 0}", "topology.backends: must be >= 1, got 0"),
        ("topology: {noop: 1}", "topology.noop: expected true or false, got 1"),
        ("topology: 5", "topology: expected a mapping, got 5"),
        ("experiment: {duration_s: fast}", "experiment.duration_s: expected a number, got 'fast'"),
        ("experiment: {duration_s: 0}", "experiment.duration_s: must be > 0, got 0"),
        ("experiment: {duration_s: .inf}", "experiment.duration_s: expected a finite number"),
        ("experiment: {name: 12}", "experiment.name: expected a string, got 12"),
        (
            "experiment: {duration_s: 3, warmup_s: 3}",
            "experiment.warmup_s: must be less than duration_s (3), got 3",
        ),
        ("workload: {stp: always}", "workload.stp: expected one of 'none' or 'cancel-newest'"),
        (
            "topology: {transport: pigeon}",
            "topology.transport: expected one of 'ray', 'stream' or 'http'",
        ),
        ("workload: {rate: fast}", "workload.rate: expected a positive number of orders/s"),
        ("workload: {rate: 0}", "workload.rate: expected a positive number of orders/s"),
        ("workload: {rate: true}", "workload.rate: expected a positive number of orders/s"),
        ("workload: {order_flow: {price_decay: 1}}", "workload.order_flow.price_decay: must be <"),
        (
            "workload: {order_flow: {mid_price: 10, price_levels: 10}}",
            "workload.order_flow.price_levels: must be less than mid_price (10)",
        ),
        ("results: {url: 'mysql://x'}", "results.url: expected 'sqlite:///<path>'"),
        ("thresholds: {max_errors: -1}", "thresholds.max_errors: must be >= 0, got -1"),
        ("layouts: {a: {kind: cloud}}", "layouts.a.kind: expected one of 'local', 'emulated'"),
        ("layouts: {a: {nodes: 2, placement: explicit}}", "layouts.a: placement 'explicit' needs"),
        (
            "layouts: {a: {nodes: 2, placement: explicit, explicit: {engine: [0, 2]}}}",
            "layouts.a: explicit.engine: node index 2 is out of range for 2 nodes",
        ),
        (
            "layouts: {a: {placement: explicit, explicit: {engines: [0]}}}",
            "layouts.a.explicit.engines: invalid key: expected one of 'engine'",
        ),
        (
            "layouts: {a: {placement: explicit, explicit: {engine: [-1]}}}",
            "layouts.a.explicit.engine[0]: must be >= 0, got -1",
        ),
        ("layouts: {a: {kuberay: {}}}", "layouts.a: 'kuberay' settings given for a 'local'"),
        ("layouts: {a: {kind: kuberay, kuberay: {nmspace: x}}}", "layouts.a.kuberay.nmspace"),
    ],
)
def test_problems_name_file_and_key(text, expected):
    message = error_of(text)
    assert message.startswith(f"{CONFIG}: ")
    assert expected in message


def test_mix_must_sum_to_one():
    message = error_of("workload: {mix: {limit: 0.5}}")
    assert f"{CONFIG}: workload.mix: fractions must sum to 1, got 0.9" in message
    assert "limit 0.5" in message
    mix = "{limit: 0.7, market: 0.1, ioc: 0.1, cancel: 0.1, modify: 0}"
    assert load(f"workload: {{mix: {mix}}}").workload.mix.limit == 0.7
    assert load("workload: {mix: {limit: 0.6000000001}}").workload.mix.limit == 0.6000000001


def test_every_problem_is_reported_one_per_line():
    lines = error_of("topology: {backends: x, engines: 0}\nrisk: {max_position: y}").splitlines()
    assert len(lines) == 3
    assert all(line.startswith(f"{CONFIG}: ") for line in lines)


def test_missing_file():
    with pytest.raises(ConfigError, match=r"^configs/nope\.yaml: no such file$"):
        load_config("configs/nope.yaml", env={})


def test_invalid_yaml_names_the_line():
    message = error_of("topology:\n  engines: 1\n backends: [\n")
    assert message.startswith(f"{CONFIG}: invalid YAML at line 3")


def test_duplicate_keys_are_an_error():
    message = error_of("topology:\n  engines: 1\n  engines: 2\n")
    assert f"{CONFIG}: invalid YAML at line 3" in message and "duplicate key 'engines'" in message


def test_top_level_must_be_a_mapping():
    assert "expected a mapping of sections at the top, got a list" in error_of("- 1\n- 2\n")


def test_numbers_in_exponent_form_are_numbers():
    assert load("risk: {max_order_rate: 2.5e3}").risk.max_order_rate == 2500.0
    assert load("workload: {rate: 1e6}").workload.rate == 1e6


# -- precedence: file < environment < --set --------------------------------------


def test_environment_overrides_the_file():
    env = {"LAB_TOPOLOGY__BACKENDS": "8", "LAB_WORKLOAD__ORDER_FLOW__MID_PRICE": "500"}
    config = load("topology: {backends: 2, engines: 3}", env=env)
    assert config.topology.backends == 8 and config.topology.engines == 3
    assert config.workload.order_flow.mid_price == 500


def test_set_overrides_environment_and_file():
    config = load(
        "topology: {backends: 2}\nworkload: {rate: 100}",
        overrides=["topology.backends=16", "workload.rate=max"],
        env={"LAB_TOPOLOGY__BACKENDS": "8"},
    )
    assert config.topology.backends == 16 and config.workload.rate == "max"


def test_os_environ_is_the_default_environment(monkeypatch):
    monkeypatch.setenv("LAB_TOPOLOGY__ENGINES", "5")
    assert load_config(write(CONFIG, "")).topology.engines == 5


def test_variables_without_a_section_separator_are_ignored():
    assert load("", env={"LAB_HOME": "/x", "PATH": "/bin"}) == ExperimentConfig()


def test_bad_environment_value_names_the_variable():
    message = error_of("", env={"LAB_TOPOLOGY__BACKENDS": "eight"})
    assert message == (
        f"{CONFIG}: topology.backends: expected an integer, got 'eight'"
        " (from LAB_TOPOLOGY__BACKENDS)"
    )


def test_environment_variable_with_unknown_key_or_empty_part():
    message = error_of("", env={"LAB_TOPOLOGY__BACKNDS": "2"})
    assert "topology.backnds: unknown key" in message and "LAB_TOPOLOGY__BACKNDS" in message
    message = error_of("", env={"LAB_TOPOLOGY__": "2"})
    assert message.startswith(f"{CONFIG}: LAB_TOPOLOGY__: expected LAB_<SECTION>__<KEY>")


def test_bad_set_value_names_the_override():
    message = error_of("", overrides=["topology.backends=eight"])
    assert message == (
        f"{CONFIG}: topology.backends: expected an integer, got 'eight'"
        " (from --set topology.backends=eight)"
    )


@pytest.mark.parametrize("item", ["topology.backends", "=3", "topology..backends=3"])
def test_malformed_set(item):
    message = error_of("", overrides=[item])
    assert message.startswith(f"{CONFIG}: --set {item!r}: expected dotted.key=value")


def test_set_with_unknown_key_path():
    message = error_of("", overrides=["topology.backnds=4"])
    assert f"{CONFIG}: topology.backnds: unknown key" in message
    assert "(from --set topology.backnds=4)" in message
    message = error_of("", overrides=["topology.backends.count=4"])
    assert "topology.backends: expected an integer, got a mapping" in message


def test_set_can_add_a_layout():
    config = load("", overrides=["layouts.two.kind=emulated", "layouts.two.nodes=2"])
    assert config.layout("two").nodes == 2 and "single-host" in config.layouts


# -- includes -----------------------------------------------------------------------

LAYOUTS = """
    layouts:
      single-host: {kind: local}
      four: {kind: emulated, nodes: 4}
    topology: {engines: 2, backends: 3}
"""


def test_include_is_merged_under_the_file():
    write("configs/layouts.yaml", LAYOUTS)
    config = load("include: [layouts.yaml]\ntopology: {engines: 6}")
    assert set(config.layouts) == {"single-host", "four"}
    assert config.layout("four").nodes == 4
    assert config.topology.engines == 6  # the file wins
    assert config.topology.backends == 3  # deep merge keeps the included key


def test_include_paths_are_relative_to_the_including_file():
    write("configs/shared/base.yaml", "include: [more/risk.yaml]\ntopology: {engines: 2}")
    write("configs/shared/more/risk.yaml", "risk: {max_order_qty: 5}")
    config = load("include: shared/base.yaml")
    assert config.topology.engines == 2 and config.risk.max_order_qty == 5


def test_later_includes_win_over_earlier_ones():
    write("configs/a.yaml", "topology: {engines: 2}")
    write("configs/b.yaml", "topology: {engines: 3}")
    assert load("include: [a.yaml, b.yaml]").topology.engines == 3


def test_include_cycle_is_detected():
    write("configs/a.yaml", "include: [b.yaml]")
    write("configs/b.yaml", "include: [a.yaml]")
    with pytest.raises(ConfigError) as info:
        load_config("configs/a.yaml", env={})
    message = str(info.value)
    assert message.startswith("configs/b.yaml: include[0]: include cycle")
    assert "configs/a.yaml -> configs/b.yaml -> configs/a.yaml" in message
    assert "include cycle" in error_of("include: [x.yaml]")  # includes itself


def test_missing_or_malformed_include():
    message = error_of("include: [nope.yaml]")
    assert message == f"{CONFIG}: include[0]: no such file 'configs/nope.yaml'"
    assert f"{CONFIG}: include: expected a list of file paths" in error_of("include: {a: 1}")


def test_problem_in_an_included_file_names_it():
    write("configs/layouts.yaml", "layouts: {bad: {nodes: zero}}")
    message = error_of("include: [layouts.yaml]")
    assert message == (
        f"{CONFIG}: layouts.bad.nodes: expected an integer, got 'zero' (from configs/layouts.yaml)"
    )


def test_invalid_yaml_in_an_included_file_names_it():
    write("configs/layouts.yaml", "layouts: [\n")
    assert error_of("include: [layouts.yaml]").startswith("configs/layouts.yaml: invalid YAML")


# -- the config object --------------------------------------------------------------


def test_with_overrides_returns_a_new_validated_config():
    config = load("topology: {backends: 2}")
    changed = with_overrides(config, ["topology.backends=4"])
    assert changed.topology.backends == 4 and config.topology.backends == 2
    assert changed.source == CONFIG
    with pytest.raises(ConfigError) as info:
        with_overrides(config, ["topology.backends=-1"], origin="sweep")
    assert str(info.value) == (
        f"{CONFIG}: topology.backends: must be >= 1, got -1 (from sweep topology.backends=-1)"
    )


def test_dict_round_trip():
    config = load("workload: {rate: 1000}\nlayouts: {k: {kind: kuberay}}")
    data = json.loads(json.dumps(config.to_dict()))
    assert config_from_dict(data) == config
    assert config.layout("k").kuberay.namespace == "hft-lab"


def test_from_dict_errors_name_the_source():
    with pytest.raises(ConfigError, match=r"^<dict>: topology.engines: expected an integer"):
        config_from_dict({"topology": {"engines": "x"}})


def test_unknown_layout_lists_the_available_ones():
    config = load("layouts: {b: {}, a: {}}")
    assert config.layout("a") == Layout()
    expected = r"^configs/x.yaml: layouts: no layout 'c' \(available: a, b, single-host\)$"
    with pytest.raises(ConfigError, match=expected):
        config.layout("c")


def test_single_host_is_always_there_unless_redefined():
    assert load("layouts: {four: {nodes: 4}}").layout("single-host") == Layout(kind="local")
    redefined = load("layouts: {single-host: {cpus_per_node: 8}}").layout("single-host")
    assert redefined.cpus_per_node == 8


@pytest.mark.parametrize(
    "layout, message",
    [
        ({"kind": "local", "netns": True}, "emulated layouts only"),
        ({"kind": "emulated", "link_mbit": 100}, "set netns"),
    ],
)
def test_network_namespace_options_only_where_they_apply(layout, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"layouts": {"x": layout}})


# -- the load figures' settings ---------------------------------------------------


def test_an_overload_threshold_needs_an_open_loop():
    message = error_of("thresholds: {overloaded: false}\n")
    assert message.startswith(f"{CONFIG}: thresholds.overloaded: false needs an open-loop run")
    opened = load("workload: {rate: 1000}\nthresholds: {overloaded: false}\n")
    assert opened.thresholds.overloaded is False
    assert error_of("thresholds: {overloaded: true}\n").startswith(
        f"{CONFIG}: thresholds.overloaded: "
    )


def test_the_order_lifetime_is_given_as_a_lifetime_or_a_rate_not_both():
    assert load("").workload.order_flow.lifetime_s == 1.0
    assert load("workload: {order_flow: {cancel_rate: 4}}").workload.order_flow.lifetime_s == 0.25
    assert (
        load("workload: {order_flow: {mean_lifetime_s: null}}").workload.order_flow.lifetime_s
        is None
    )
    both = "workload: {order_flow: {cancel_rate: 4, mean_lifetime_s: 2}}"
    assert "give mean_lifetime_s or cancel_rate, not both" in error_of(both)


def test_drain_and_capacity_settings_are_checked():
    assert load("").experiment.drain_s == 5.0
    assert "experiment.drain_s" in error_of("experiment: {drain_s: -1}")
    assert "capacity.tolerance" in error_of("capacity: {tolerance: 1.5}")
    assert load("capacity: {slo_p99_ms: 20}").capacity.slo_p99_ms == 20
