"""The pure layer, tested from in-memory reports: no host, no HTTP, no files. The resolver, the catalog, the
opencode limits and one fleet snapshot are functions of the registry and what the hosts said; these tests say
what each makes of a given answer (the HTTP tests say the answers get there)."""

from __future__ import annotations

import time

import pytest

from boocoder_bridge.catalog import build_catalog, why_hidden
from boocoder_bridge.errors import ModelIdError, ProviderUnavailableError
from boocoder_bridge.opencode.config import OPENCODE_OUTPUT_CAP, plan_limit
from boocoder_bridge.registry import registry_from_data
from boocoder_bridge.reports import HostModel, ProviderReport
from boocoder_bridge.routing import Resolver
from tests.helpers import deepseek, llama_swap, registry_data


def _registry(env: dict[str, str] | None = None):
    data = registry_data({"gpu": llama_swap("http://127.0.0.1:9", models={"big": {"context_window": 8192,
                                                                                   "upstream_id": "big-q4"}}),
                          "deepseek": deepseek()})
    return registry_from_data(data, "<test>").bind(env or {})


def _online(pid: str, *models: HostModel) -> ProviderReport:
    return ProviderReport(provider=pid, status="online", models=list(models), fetched_at=1.0)


GPU = _online("gpu", HostModel(id="big", context_window=131072), HostModel(id="small", context_window=4096,
                                                                          max_output=1024),
              HostModel(id="fast", type="alias", alias_of="small"), HostModel(id="mystery"))
OFF = ProviderReport(provider="deepseek", status="disabled", error="off")


def test_the_registry_overrides_the_host_and_an_alias_borrows_its_target() -> None:
    resolver = Resolver(_registry(), {"gpu": GPU, "deepseek": OFF})
    big = resolver.resolve("gpu/big")
    assert (big.context_window, big.upstream_model, big.base_url) == (8192, "big-q4", "http://127.0.0.1:9/v1")
    assert resolver.resolve("gpu/fast").context_window == 4096  # the alias has none of its own
    assert resolver.resolve("gpu/fast").max_output == 1024
    assert resolver.resolve("gpu/mystery").context_window is None  # nobody knows: never a guess
    assert resolver.resolve("small").id == "gpu/small"  # a legacy bare ID goes to the default provider


def test_a_context_hook_answers_only_what_nobody_else_knows() -> None:
    asked: list[str] = []
    resolver = Resolver(_registry(), {"gpu": GPU, "deepseek": OFF}, lambda p, m: asked.append(m) or 2048)
    assert resolver.resolve("gpu/mystery").context_window == 2048
    assert resolver.resolve("gpu/big").context_window == 8192
    assert asked == ["mystery"]


def test_enabled_is_the_environment_bound_at_load() -> None:
    off, on = _registry({}), _registry({"DEEPSEEK_API_KEY": "x"})
    with pytest.raises(ProviderUnavailableError, match="DEEPSEEK_API_KEY"):
        Resolver(off, {}).resolve("deepseek/deepseek-chat")
    assert Resolver(on, {}).resolve("deepseek/deepseek-chat").context_window == 131072
    with pytest.raises(ModelIdError, match="purpose"):
        Resolver(on, {}).resolve("deepseek/deepseek-chat", "nope")


def test_the_catalog_lists_favorites_first_and_hides_what_is_not_listed() -> None:
    registry = _registry()
    reports = {"gpu": GPU, "deepseek": OFF}
    favorites = ["gpu/small", "gpu/fast", "deepseek/deepseek-chat", "gpu/small", "gpu/gone"]
    catalog = build_catalog(registry, reports, Resolver(registry, reports), favorites)
    assert [m.id for m in catalog.favorites] == ["gpu/small"]  # once; aliases, disabled and unlisted hidden
    gpu, ds = catalog.providers
    assert [m.model for m in gpu.models] == ["big", "small", "mystery"]  # the host's order, no alias
    assert [m.context_window for m in gpu.models] == [8192, 4096, None]  # the resolver's, registry first
    assert (ds.status, ds.models) == ("disabled", [])
    assert why_hidden(registry, reports, "gpu/fast") == "an alias (aliases stay requestable but are not listed)"
    assert why_hidden(registry, reports, "gpu/gone") == "gpu does not list gone now"
    assert why_hidden(registry, reports, "nope/x") == "provider nope is not in the registry"


def test_a_host_that_went_down_lists_nothing_in_the_catalog() -> None:
    registry = _registry()
    down = ProviderReport(provider="gpu", status="offline", error="cannot connect", models=GPU.models)
    catalog = build_catalog(registry, {"gpu": down, "deepseek": OFF}, Resolver(registry, {}), ["gpu/big"])
    assert catalog.favorites == [] and catalog.providers[0].models == []
    assert why_hidden(registry, {"gpu": down, "deepseek": OFF}, "gpu/big") == "provider gpu is offline: cannot connect"


@pytest.mark.parametrize(("context", "max_output", "headroom", "expected"), [
    (131072, None, None, (131072, 131072 - 8192, OPENCODE_OUTPUT_CAP)),  # a quarter, capped at opencode's 32000
    (16384, None, None, (16384, 16384 - 2048, 4096)),  # a quarter of the window, an eighth kept free
    (16384, 100000, None, (16384, 16384 - 2048, 8192)),  # a configured output is clamped to half the window
    (16384, 1000, 0, (16384, 16384, 1000)),
    (100, None, 1000, (100, 50, 25)),  # headroom never takes more than half the window
])
def test_plan_limit(context: int, max_output: int | None, headroom: int | None, expected: tuple) -> None:
    limit = plan_limit(context, max_output, headroom)
    assert limit is not None and (limit.context, limit.input, limit.output) == expected


def test_plan_limit_knows_when_opencode_cannot_compact() -> None:
    assert plan_limit(None) is None
    small, large = plan_limit(8192), plan_limit(32768)
    assert small is not None and not small.compaction_works  # opencode would compact again right after
    assert large is not None and large.compaction_works


def test_one_snapshot_routes_by_the_last_good_answer_but_refuses_the_host_that_is_down(tmp_path) -> None:
    from boocoder_bridge.cache import DiscoveryCache
    from boocoder_bridge.fleetstate import FleetSource

    registry = _registry()
    cache = DiscoveryCache(tmp_path)
    cache.store(registry.providers, {"gpu": GPU})
    source = FleetSource(registry, cache, lister=lambda provider: None, env={}, ttl_s=30)
    down = ProviderReport(provider="gpu", status="offline", error="cannot connect", fetched_at=2.0)
    state = source.publish({"gpu": down, "deepseek": OFF}, favorites=["gpu/small"])
    assert source.current() is state and source.fresh() is state  # published: every operation reads it
    route = state.resolve("gpu/small")
    assert route.context_window == 4096  # from the last good answer
    assert state.check("gpu/smal").message() == "gpu does not list model 'smal'; did you mean gpu/small?"
    with pytest.raises(ProviderUnavailableError, match="gpu/small: provider gpu is offline"):
        state.refuse_unavailable([route])
    used, stale = state.config_reports()
    assert list(used) == ["gpu"] and used["gpu"] is GPU and stale == ["gpu"]  # deepseek is disabled
    assert state.hidden() == {"gpu/small": "provider gpu is offline: cannot connect"}
    rows = {row.id: row for row in state.rows()}
    assert (rows["gpu"].status, rows["gpu"].model_count, rows["deepseek"].enabled) == ("offline", 0, False)
    again = source.publish({"gpu": down, "deepseek": OFF})
    assert again.generation > state.generation and again.resolver is state.resolver  # same answers, same routes


def test_a_fleet_with_a_static_provider_keeps_its_snapshot_while_nothing_changed(tmp_path) -> None:
    """A static report is made once: a new one per call made every call look like a change, so a long-lived
    Bridge rebuilt its resolver (and lost its memoised routes) on every operation."""
    from boocoder_bridge.cache import DiscoveryCache
    from boocoder_bridge.fleetstate import FleetSource

    registry = _registry({"DEEPSEEK_API_KEY": "x"})
    cache = DiscoveryCache(tmp_path)
    cache.store(registry.providers, {"gpu": GPU.model_copy(update={"fetched_at": time.time()})})
    source = FleetSource(registry, cache, lister=lambda provider: None, env={}, ttl_s=3600)  # fresh: never asked
    first = source.fresh()
    assert first.reports["deepseek"].status == "static" and first.reports["gpu"].status == "online"
    assert source.fresh() is first and source.current().resolver is first.resolver
