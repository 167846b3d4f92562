"""What the per-call work rests on: the cache holds each model list once, old caches still read, the served
catalog is built once per change, and the fast JSON writer writes what ``json.dumps`` would."""

from __future__ import annotations

import json

import pytest

from boocoder_bridge import Bridge
from boocoder_bridge.cache import CACHE_VERSION
from tests.fakehost import llama_swap_body
from tests.helpers import build_fleet


@pytest.fixture
def fleet(hosts, write_registry, isolated):
    path, up = build_fleet(hosts, write_registry, {"up": {
        "models_body": llama_swap_body("coder", "chat", contexts={"coder": 65536}), "provider": {"timeout_s": 1}}})
    return path, up, isolated / "discovery-cache.json"


def test_a_good_answer_is_written_once_and_a_lost_host_keeps_it(fleet) -> None:
    path, up, cache = fleet
    Bridge.load(path).reports(refresh=True)
    data = json.loads(cache.read_text())
    assert data["version"] == CACHE_VERSION
    entry = data["providers"]["up"]
    assert [m["id"] for m in entry["latest"]["models"]] == ["chat", "coder"]
    assert "last_good" not in entry  # the latest answer is the last good one: not written twice

    up.stop()
    bridge = Bridge.load(path)
    assert bridge.reports(refresh=True)["up"].status == "offline"
    entry = json.loads(cache.read_text())["providers"]["up"]
    assert entry["latest"]["status"] == "offline"
    assert [m["id"] for m in entry["last_good"]["models"]] == ["chat", "coder"]
    assert bridge.resolve("up/coder").context_window == 65536  # routed by the last known answer

    bridge.reports(refresh=True)  # still down: the kept answer is kept, not lost
    assert [m["id"] for m in json.loads(cache.read_text())["providers"]["up"]["last_good"]["models"]] == [
        "chat", "coder"]


def test_a_version_1_cache_is_still_read(fleet) -> None:
    path, up, cache = fleet
    Bridge.load(path).reports(refresh=True)
    data = json.loads(cache.read_text())
    entry = data["providers"]["up"]
    entry["latest"] = {"provider": "up", "status": "offline", "error": "down", "models": [], "fetched_at": 1.0}
    entry["last_good"] = {"provider": "up", "status": "online", "models": [{"id": "old-model"}], "fetched_at": 1.0}
    data["version"] = 1
    cache.write_text(json.dumps(data))
    up.stop()
    bridge = Bridge.load(path)
    config, stale = bridge.opencode_config(offline=True)
    assert list(config["provider"]["up"]["models"]) == ["old-model"]
    assert stale == ["up"]
    assert bridge.warnings == []


def test_an_unchanged_fleet_keeps_one_snapshot_and_its_routes(fleet) -> None:
    """Within the TTL every operation reads the same snapshot (no host asked, the resolver's memo kept); a
    refresh makes a new one, and a new answer from the host is what the next route says."""
    path, up, _ = fleet
    bridge = Bridge.load(path)
    first = bridge.state()
    asked = len(up.paths())
    assert bridge.state() is first and len(up.paths()) == asked
    assert bridge.resolver is first.resolver
    route = bridge.resolve("up/coder")
    assert bridge.resolve("up/coder") is route and route.context_window == 65536
    up.models_body = llama_swap_body("coder", contexts={"coder": 131072})
    refreshed = bridge.state(refresh=True)
    assert refreshed.generation > first.generation and len(up.paths()) > asked
    assert bridge.resolve("up/coder").context_window == 131072
    assert [g.id for g in bridge.catalog().providers] == ["up"]
    assert [m.model for m in bridge.catalog().providers[0].models] == ["coder"]


def test_cli_json_is_what_json_dumps_writes(fleet, run_cli) -> None:
    path, _, _ = fleet
    for argv in (["models", "--json"], ["resolve", "up/coder", "--json"], ["generate"]):
        out = run_cli("--registry", str(path), *argv).out
        assert out == json.dumps(json.loads(out), indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("name", ["plain", "has {env:X}", "{", "a}b", "\u007b"])
def test_render_skips_brace_escaping_only_when_it_changes_nothing(name) -> None:
    from pydantic_core import to_json

    from boocoder_bridge.opencode import config as opencode

    config = {"$schema": opencode.SCHEMA_URL, "provider": {"p": {
        "options": {"apiKey": "{env:OWN_KEY}", "baseURL": "http://h/v1"}, "models": {"m": {"name": name}}}}}
    slow = opencode._BRACED_STRING.sub(opencode._escape_braces, to_json(config, indent=2).decode())
    slow = opencode._OWN_KEY.sub(r'"apiKey": "{env:\1}"', slow) + "\n"
    assert opencode.render(config) == slow
    assert json.loads(opencode.render(config)) == config


def test_models_of_one_shape_share_one_fields_set_and_a_changed_copy_gets_its_own(hosts, write_registry) -> None:
    """Memory (``bulk.FieldsSetPool``): host models given the same fields hold one set object, whether just
    parsed or read back from the cache, and so do catalog entries; a copy with changes gets its own set and
    leaves the shared one as it was."""
    up = hosts(name="up", models_body=llama_swap_body("a", "b", "c", "d", contexts={"a": 4096}))
    path = write_registry({"default_provider": "up", "providers": {"up": {"kind": "llama-swap", "base_url": up.url}}})
    for refresh in (True, False):  # parsed from the host, then read from the cache by a new process's bridge
        bridge = Bridge.load(path)
        by_id = {m.id: m for m in bridge.reports(refresh=refresh)["up"].models}
        b, c, d = by_id["b"], by_id["c"], by_id["d"]
        assert b.__pydantic_fields_set__ is c.__pydantic_fields_set__ is d.__pydantic_fields_set__
        assert len({id(m.__pydantic_fields_set__) for m in by_id.values()}) <= 2  # "a" alone has a window
        for model in by_id.values():  # the same set as pydantic gives when it validates the same fields
            assert model.model_fields_set == type(model).model_validate(
                model.model_dump(exclude_unset=True)).model_fields_set
        before = set(c.model_fields_set)
        renamed = b.model_copy(update={"name": "renamed"})
        assert "name" in renamed.model_fields_set and renamed.model_dump(exclude_unset=True)["name"] == "renamed"
        assert c.model_fields_set == before and renamed.__pydantic_fields_set__ is not c.__pydantic_fields_set__
        group = bridge.catalog().providers[0]
        assert len({id(m.__pydantic_fields_set__) for m in group.models}) == 1 and len(group.models) == 4


def test_only_frozen_models_share_fields_sets() -> None:
    from boocoder_bridge.bulk import FieldsSetPool
    from boocoder_bridge.cache import CacheFile

    with pytest.raises(TypeError, match="not frozen"):
        FieldsSetPool().add(CacheFile())


def test_an_answer_stored_while_the_resolver_is_built_is_not_missed(fleet, monkeypatch) -> None:
    """Regression: in serve, the live loop stores answers from a worker thread while a request thread builds
    the resolver. The resolver took the cache generation after reading the reports, so a store in between
    marked the old reports as current and the routes stayed stale until the cache changed again."""
    from boocoder_bridge.reports import HostModel, ProviderReport

    path, _, _ = fleet
    bridge = Bridge.load(path)
    bridge.reports(refresh=True)
    provider = bridge.registry.providers["up"]
    newer = ProviderReport(provider="up", status="online", fetched_at=2e9,
                           models=[HostModel(id="coder", context_window=131072)])
    read = bridge.fleet._gather

    def read_then_another_thread_stores(cached):
        reports = read(cached)
        monkeypatch.setattr(bridge.fleet, "_gather", read)  # once
        bridge.cache.store({"up": provider}, {"up": newer})  # what another thread does meanwhile
        return reports

    monkeypatch.setattr(bridge.fleet, "_gather", read_then_another_thread_stores)
    assert bridge.resolve("up/coder").context_window == 65536  # built from what was read
    assert bridge.resolve("up/coder").context_window == 131072  # the stored answer is seen next
