"""The catalog: Favorites first, hidden-not-deleted while offline, cache with TTL, offline generation."""

from __future__ import annotations

import pytest

from boocoder_bridge import Bridge
from boocoder_bridge.catalog import Catalog
from tests.fakehost import llama_swap_body
from tests.helpers import build_fleet, deepseek


@pytest.fixture
def fleet(hosts, write_registry):
    return build_fleet(hosts, write_registry, {
        "sam": {"models_body": llama_swap_body("same-model", "coder", contexts={"coder": 65536}),
                "provider": {"label": "Sam"}},
        "emb": {"models_body": llama_swap_body("same-model", "bge-m3"), "provider": {"timeout_s": 0.5}},
    }, others={"deepseek": deepseek()})


def ids(catalog: Catalog) -> dict[str, list[str]]:
    out = {"favorites": [m.id for m in catalog.favorites]}
    out.update({g.id: [m.id for m in g.models] for g in catalog.providers})
    return out


def test_same_model_on_two_hosts_is_two_entries(fleet) -> None:
    path, _, _ = fleet
    catalog = Bridge.load(path).catalog()
    assert ids(catalog)["sam"] == ["sam/coder", "sam/same-model"]
    assert ids(catalog)["emb"] == ["emb/bge-m3", "emb/same-model"]
    coder = catalog.providers[0].models[0]
    assert coder.context_window == 65536 == Bridge.load(path).context_window("sam/coder")


def test_favorites_first_and_marked_in_their_group(fleet) -> None:
    path, _, _ = fleet
    bridge = Bridge.load(path)
    for model_id in ("emb/same-model", "coder", "deepseek-chat"):
        bridge.favorites.add(model_id)
    catalog = bridge.catalog()
    assert ids(catalog)["favorites"] == ["emb/same-model", "sam/coder"]  # deepseek disabled: hidden
    groups = {g.id: g for g in catalog.providers}
    assert [m.favorite for m in groups["emb"].models] == [False, True]
    assert groups["deepseek"].status == "disabled" and groups["deepseek"].models == []
    assert list(catalog.model_dump()) == ["favorites", "hidden_favorites", "providers"]
    hidden = [(h.id, h.reason) for h in catalog.hidden_favorites]  # the reason rides with the catalog (issue 24)
    assert hidden == [("deepseek/deepseek-chat", bridge.hidden_favorites()["deepseek/deepseek-chat"])]
    assert "DEEPSEEK_API_KEY" in hidden[0][1]


def test_offline_favorite_is_hidden_kept_and_comes_back(fleet) -> None:
    path, _, emb = fleet
    bridge = Bridge.load(path)
    bridge.favorites.add("emb/bge-m3")
    assert ids(bridge.catalog())["favorites"] == ["emb/bge-m3"]
    emb.fault = "hang"
    offline = bridge.catalog(refresh=True)
    group = {g.id: g for g in offline.providers}["emb"]
    assert (group.status, group.models) == ("offline", [])
    assert "0.5 s" in group.error
    assert ids(offline)["favorites"] == []
    assert bridge.favorites.list() == ["emb/bge-m3"]  # never deleted
    emb.fault = None
    assert ids(bridge.catalog(refresh=True))["favorites"] == ["emb/bge-m3"]  # back by itself


def test_favorite_hidden_while_the_host_stops_listing_it(fleet) -> None:
    path, sam, _ = fleet
    bridge = Bridge.load(path)
    bridge.favorites.add("sam/coder")
    sam.models_body = llama_swap_body("same-model")
    assert ids(bridge.catalog(refresh=True))["favorites"] == []
    sam.models_body = llama_swap_body("same-model", "coder")
    assert ids(bridge.catalog(refresh=True))["favorites"] == ["sam/coder"]
    assert bridge.favorites.list() == ["sam/coder"]


def test_fresh_cache_is_served_without_network(fleet) -> None:
    path, sam, emb = fleet
    Bridge.load(path).catalog()
    asked = (len(sam.requests), len(emb.requests))
    Bridge.load(path).catalog()  # a new process-like bridge: the cache file is shared
    assert (len(sam.requests), len(emb.requests)) == asked
    Bridge.load(path).catalog(refresh=True)
    assert (len(sam.requests), len(emb.requests)) == (asked[0] + 1, asked[1] + 1)


def test_stale_cache_is_refreshed_after_the_ttl(fleet, monkeypatch) -> None:
    path, sam, _ = fleet
    Bridge.load(path).catalog()
    asked = len(sam.requests)
    monkeypatch.setenv("BOOCODER_BRIDGE_CACHE_TTL", "0")
    Bridge.load(path).catalog()
    assert len(sam.requests) == asked + 1


def test_generate_offline_uses_last_known_models_and_names_stale(fleet, run_cli) -> None:
    path, sam, emb = fleet
    assert run_cli("--registry", str(path), "models", "--json").code == 0
    emb.fault = "status"
    emb.fault_arg = 500
    live = run_cli("--registry", str(path), "models", "--json", "--refresh").json()
    assert {g["id"]: g["status"] for g in live["providers"]}["emb"] == "error"
    asked = (len(sam.requests), len(emb.requests))
    result = run_cli("--registry", str(path), "--cache-ttl", "0", "generate", "--offline")
    assert result.code == 0
    assert (len(sam.requests), len(emb.requests)) == asked  # no network at all
    config = result.json()
    assert sorted(config["provider"]["emb"]["models"]) == ["bge-m3", "same-model"]  # last known, kept
    assert "stale" in result.err and "emb" in result.err


def test_generate_offline_with_no_cache_says_so(fleet, run_cli) -> None:
    path, sam, _ = fleet
    result = run_cli("--registry", str(path), "generate", "--offline")
    assert result.code == 0 and sam.requests == []
    assert result.json()["provider"]["sam"]["models"] == {}
    assert "no models known for: sam, emb (" in result.err and "stale" not in result.err


def test_text_view_reads_like_a_picker(fleet, run_cli) -> None:
    path, _, emb = fleet
    run_cli("--registry", str(path), "favorites", "add", "sam/coder")
    emb.fault = "hang"
    out = run_cli("--registry", str(path), "models").out
    lines = out.splitlines()
    assert lines[0] == "Favorites" and "sam/coder" in lines[1] and "64k ctx" in lines[1]
    assert any(line.startswith("Sam [sam, llama-swap]: online") for line in lines)
    assert any(line.startswith("emb [emb, llama-swap]: offline") for line in lines)
    assert max(map(len, lines)) <= 80


@pytest.mark.parametrize(("window", "shown"), [(65536, "64k ctx"), (1024, "1k ctx"), (1000, "1,000 ctx"),
                                               (131000, "131,000 ctx"), (None, "ctx ?")])
def test_text_view_shows_a_window_as_it_is(window, shown) -> None:
    from boocoder_bridge.catalog import CatalogModel, _line

    model = CatalogModel(id="p/m", provider="p", model="m", name="m", context_window=window, favorite=False)
    assert _line(model, 80).endswith(" " + shown)


def test_warm_cache_commands_never_load_the_network_stack(fleet) -> None:
    import subprocess
    import sys

    path, sam, _ = fleet
    Bridge.load(path).catalog()
    asked = len(sam.requests)
    code = ("import sys; from boocoder_bridge import Bridge; b = Bridge.load(sys.argv[1]); b.catalog(); "
            "b.resolve('coder'); b.opencode_config(); print(sorted({'httpx', 'asyncio'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]" and len(sam.requests) == asked


def test_text_view_marks_loaded_and_loading_models_and_says_why_a_favorite_is_hidden() -> None:
    from boocoder_bridge.catalog import Catalog, CatalogGroup, CatalogModel, HiddenFavorite

    def model(name: str, state: str | None, progress: float | None = None) -> CatalogModel:
        return CatalogModel(id=f"p/{name}", provider="p", model=name, name=name, context_window=1024,
                            favorite=False, state=state, load_progress=progress)

    group = CatalogGroup(id="p", label="P", kind="llama-cpp", status="online", error=None, max_loaded=1,
                         models=[model("hot", "loaded"), model("warming", "loading", 0.4), model("cold", "unloaded"),
                                 model("asleep", "sleeping"), model("unknown", None)])
    text = Catalog(favorites=[], providers=[group],
                   hidden_favorites=[HiddenFavorite(id="q/gone", reason="provider q is offline")]).render_text()
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("   ")}
    assert "[loaded] 1k ctx" in lines["hot"] and "[loading 40 %]" in lines["warming"]
    assert "[sleeping]" in lines["asleep"]
    assert "[" not in lines["cold"] and "[" not in lines["unknown"]  # cold is the default; unknown claims nothing
    assert "q/gone  (hidden: provider q is offline)" in text
