"""The picker page at ``/`` in real headless Chromium (Debian's ``chromium``, driven by playwright), against a
real ``serve`` process and hosts on 127.0.0.1. Select these with ``-m browser`` (or leave them out with
``-m "not browser"``).

The screenshots each run takes are saved in the test's temp dir; set ``BOOCODER_BRIDGE_SCREENSHOTS=DIR`` to
also write them to ``DIR`` (``docs/`` holds the one the README shows).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.fakehost import ROUTER_PROPS, llama_swap_body, router_body
from tests.live_fleet import Fleet, Host, serve_fleet
from tests.test_cli import assert_valid

pytestmark = pytest.mark.browser

# What the machine notes prescribe for Debian's Chromium as root in a closed network (no sandbox, no GPU, no
# background connections that the network would refuse).
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
LIVE_WITHIN_MS = 15_000  # the bound for the page to update by itself


def sam_body() -> dict[str, Any]:
    body = llama_swap_body("qwen3-coder-30b", "gpt-oss-20b", "unsloth/Qwen3:Q4_K_M", loaded=("qwen3-coder-30b",),
                           contexts={"qwen3-coder-30b": 65536, "gpt-oss-20b": 131072})
    names = {"qwen3-coder-30b": "Qwen3 Coder 30B A3B", "gpt-oss-20b": "gpt-oss 20B"}
    for entry in body["data"]:
        if entry["id"] in names:
            entry["name"] = names[entry["id"]]
    return body


@dataclass
class View:
    """One browser tab on the fleet's page, and every console error, CSP report or script error it produced."""

    page: Any
    fleet: Fleet
    problems: list[str] = field(default_factory=list)

    def section(self, name: str) -> Any:
        return self.page.locator(f'section[data-section="{name}"]')

    def row(self, section: str, model_id: str) -> Any:
        return self.section(section).locator(f'[data-model-id="{model_id}"]')

    def ids(self, section: str) -> list[str]:
        return self.section(section).locator("[data-model-id]").evaluate_all(
            "rows => rows.map(row => row.dataset.modelId)")

    def expect_ids(self, section: str, ids: list[str]) -> None:
        rows = self.section(section).locator("[data-model-id]")
        expect(rows).to_have_count(len(ids), timeout=LIVE_WITHIN_MS)
        for index, model_id in enumerate(ids):
            expect(rows.nth(index)).to_have_attribute("data-model-id", model_id, timeout=LIVE_WITHIN_MS)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("the browser tests need Debian's chromium (apt-get install chromium; .ci/run installs it); "
                    "leave them out with -m 'not browser'")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=executable, args=FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    sam = Host(name="sam", models_body=sam_body(), events=True)  # with llama-swap's /api/events
    emb = Host(name="emb", models_body={"object": "list", "data": [{"id": "nomic-embed-text"}]})
    rig = Host(name="rig", models_body=router_body({"gemma-3-4b": "loaded", "qwen3-8b": "unloaded"}, 8192),
               extra={"/props": ROUTER_PROPS})  # llama.cpp's router, --models-max 1
    providers = {
        "sam": {"kind": "llama-swap", "base_url": sam.url, "label": "Sam's desktop"},
        "rig": {"kind": "llama-cpp", "base_url": rig.url, "label": "Rig (llama.cpp router)"},
        "emb": {"kind": "openai-compatible", "base_url": emb.url, "label": "Embedding box"},
        "cloud": {"kind": "openai-compatible", "base_url": "https://127.0.0.1:9", "discover": False,
                  "label": "Cloud", "models": {"big-chat": {"name": "Big Chat", "context_window": 131072}}},
        "deepseek": {"kind": "openai-compatible", "base_url": "https://127.0.0.1:9", "discover": False,
                     "enabled_if_env": "BOOCODER_TEST_NEVER_SET", "bare_ids": ["deepseek-chat"]},
    }
    with serve_fleet(tmp_path, providers, {"sam": sam, "emb": emb, "rig": rig}) as running:
        yield running


def open_page(chromium: Any, fleet: Fleet, path: str = "/", **context: Any) -> View:
    view = View(chromium.new_context(**{"viewport": {"width": 1000, "height": 900}, **context}).new_page(), fleet)
    view.page.on("console", lambda m: view.problems.append(m.text) if m.type in ("error", "warning") else None)
    view.page.on("pageerror", lambda error: view.problems.append(str(error)))
    response = view.page.goto(fleet.url + path)
    assert response is not None and response.status == 200
    expect(view.page.locator("#live")).to_have_attribute("data-live", "live")
    # "live" is set when the event stream opens, which can come before the first catalog is drawn; the tests
    # read the rows at once, so wait for that drawing too (render() clears aria-busy).
    expect(view.page.locator("#picker")).to_have_attribute("aria-busy", "false")
    return view


@pytest.fixture
def view(chromium: Any, fleet: Fleet) -> Iterator[View]:
    opened = open_page(chromium, fleet)
    yield opened
    opened.page.context.close()


def put(fleet: Fleet, *model_ids: str) -> None:
    for model_id in model_ids:
        assert httpx.put(f"{fleet.url}/api/favorites/{model_id}").status_code == 200


def save_screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("BOOCODER_BRIDGE_SCREENSHOTS"):
        shutil.copy(path, Path(os.environ["BOOCODER_BRIDGE_SCREENSHOTS"]) / name)
    print(f"screenshot: {path}")
    return path


def test_sections_statuses_and_rows_follow_the_contract(view: View) -> None:
    page = view.page
    sections = page.locator("section[data-section]").evaluate_all("all => all.map(s => s.dataset.section)")
    assert sections == ["favorites", "sam", "rig", "emb", "cloud", "deepseek"]  # Favorites first, registry order
    for section, status in (("sam", "online"), ("emb", "online"), ("cloud", "static"), ("deepseek", "disabled")):
        expect(view.section(section).locator("[data-status]")).to_have_text(status)
    expect(view.section("sam").locator("h2")).to_have_text("Sam's desktop")
    expect(view.section("sam")).to_contain_text("llama-swap")
    expect(view.section("deepseek")).to_contain_text("set BOOCODER_TEST_NEVER_SET")  # the reason it is off
    assert view.ids("sam") == ["sam/gpt-oss-20b", "sam/qwen3-coder-30b", "sam/unsloth/Qwen3:Q4_K_M"]
    coder = view.row("sam", "sam/qwen3-coder-30b")
    expect(coder).to_contain_text("Qwen3 Coder 30B A3B")
    expect(coder).to_contain_text("sam/qwen3-coder-30b")
    expect(coder).to_contain_text("64K context")
    expect(view.row("sam", "sam/unsloth/Qwen3:Q4_K_M")).to_contain_text("context unknown")
    expect(view.row("cloud", "cloud/big-chat")).to_contain_text("128K context")
    star = coder.get_by_role("button", name=re.compile("favorite"))
    expect(star).to_have_attribute("aria-pressed", "false")
    expect(page.get_by_role("button", name=re.compile("favorite"))).to_have_count(len(view.ids("sam")) + 4)
    assert view.ids("favorites") == []
    assert view.problems == []


def test_the_server_sends_a_strict_policy_and_the_page_runs_under_it(view: View) -> None:
    response = httpx.get(view.fleet.url + "/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy and "unsafe" not in policy
    assert httpx.get(view.fleet.url + "/static/picker.js").headers["content-security-policy"] == policy
    # Every file the page loaded came from the bridge itself (no CDN), and nothing was refused or failed.
    origins = view.page.evaluate("performance.getEntriesByType('resource').map(e => new URL(e.name).origin)")
    assert set(origins) == {view.fleet.url}
    assert view.problems == []


def test_the_star_toggles_the_favorite_on_the_server(view: View) -> None:
    star = view.row("sam", "sam/qwen3-coder-30b").get_by_role("button", name=re.compile("favorite"))
    star.click()
    expect(star).to_have_attribute("aria-pressed", "true")
    view.expect_ids("favorites", ["sam/qwen3-coder-30b"])  # and it stays in its provider's section
    assert httpx.get(view.fleet.url + "/api/favorites").json()["favorites"] == ["sam/qwen3-coder-30b"]
    view.row("favorites", "sam/qwen3-coder-30b").get_by_role("button", name=re.compile("favorite")).click()
    view.expect_ids("favorites", [])
    expect(star).to_have_attribute("aria-pressed", "false")
    assert httpx.get(view.fleet.url + "/api/favorites").json()["favorites"] == []
    assert view.problems == []


def test_a_host_going_down_and_back_updates_the_page_by_itself(view: View) -> None:
    order = ["sam/unsloth/Qwen3:Q4_K_M", "emb/nomic-embed-text", "sam/qwen3-coder-30b"]
    put(view.fleet, *order)
    view.expect_ids("favorites", order)
    view.page.evaluate("window.notReloaded = true")

    view.fleet.hosts["sam"].down()
    expect(view.section("sam").locator("[data-status]")).to_have_text("offline", timeout=LIVE_WITHIN_MS)
    view.expect_ids("favorites", ["emb/nomic-embed-text"])  # sam's favorites leave; nothing is deleted
    expect(view.section("sam")).to_contain_text("cannot connect")

    view.fleet.hosts["sam"].up()
    expect(view.section("sam").locator("[data-status]")).to_have_text("online", timeout=LIVE_WITHIN_MS)
    view.expect_ids("favorites", order)  # back, in their original order
    assert view.page.evaluate("window.notReloaded") is True
    assert view.problems == []


def test_a_favorite_added_from_the_cli_appears_without_reload(view: View) -> None:
    view.page.evaluate("window.notReloaded = true")
    view.fleet.cli("favorites", "add", "sam/gpt-oss-20b")  # another process writes the database
    view.expect_ids("favorites", ["sam/gpt-oss-20b"])
    expect(view.row("sam", "sam/gpt-oss-20b").locator(".star")).to_have_attribute("aria-pressed", "true")
    view.fleet.cli("favorites", "remove", "sam/gpt-oss-20b")
    view.expect_ids("favorites", [])
    assert view.page.evaluate("window.notReloaded") is True


def test_keyboard_tab_enter_and_star(view: View) -> None:
    page = view.page
    page.evaluate("document.addEventListener('boocoder:select', (e) => { window.chosen = e.detail; })")
    page.keyboard.press("Tab")
    assert page.evaluate("[document.activeElement.className, document.activeElement.textContent]") == [
        "toggle", "Sam's desktop"]  # a provider's heading (it folds the group), then its rows
    page.keyboard.press("Tab")
    focused = "document.activeElement.dataset.modelId"
    assert page.evaluate(focused) == "sam/gpt-oss-20b"  # the first row (no favorites yet)
    page.keyboard.press("Tab")
    assert page.evaluate(focused) == "sam/qwen3-coder-30b"  # Tab goes row to row
    page.keyboard.press("Enter")
    chosen = page.evaluate("window.chosen")
    assert chosen == {"id": "sam/qwen3-coder-30b", "provider": "sam", "model": "qwen3-coder-30b",
                      "name": "Qwen3 Coder 30B A3B", "context_window": 65536}
    expect(view.row("sam", "sam/qwen3-coder-30b")).to_have_attribute("aria-current", "true")

    page.keyboard.press("f")  # stars the focused row, on the server
    view.expect_ids("favorites", ["sam/qwen3-coder-30b"])
    assert httpx.get(view.fleet.url + "/api/favorites").json()["favorites"] == ["sam/qwen3-coder-30b"]
    # The page was redrawn with the new favorite; the focus stayed on the same row.
    assert page.evaluate("[document.activeElement.closest('section').dataset.section, " + focused + "]") == [
        "sam", "sam/qwen3-coder-30b"]
    page.keyboard.press("ArrowDown")
    assert page.evaluate(focused) == "sam/unsloth/Qwen3:Q4_K_M"
    page.keyboard.press("Home")
    page.keyboard.press(" ")
    assert page.evaluate("window.chosen.id") == "sam/qwen3-coder-30b"  # the favorites row comes first
    assert view.problems == []


def test_select_mode_posts_the_choice_to_the_opener(chromium: Any, fleet: Fleet) -> None:
    opener = chromium.new_context().new_page()
    opener.goto(fleet.url + "/healthz")
    opener.evaluate("window.addEventListener('message', (e) => { window.got = {origin: e.origin, data: e.data}; })")
    with opener.context.expect_page() as popup_info:
        opener.evaluate("url => window.open(url)", f"{fleet.url}/?select={fleet.url}")
    popup = popup_info.value
    popup.locator('section[data-section="emb"] [data-model-id="emb/nomic-embed-text"] .name').click()
    opener.wait_for_function("window.got !== undefined")
    assert opener.evaluate("window.got") == {"origin": fleet.url, "data": {
        "type": "boocoder:select", "id": "emb/nomic-embed-text", "provider": "emb", "model": "nomic-embed-text",
        "name": "nomic-embed-text", "context_window": None}}
    opener.context.close()


def test_behind_a_token_the_page_asks_for_it_or_takes_it_from_the_fragment(chromium: Any, tmp_path: Path) -> None:
    """A server with ``BOOCODER_BRIDGE_TOKEN``: the page loads and asks for the token (a form, so it is in no
    address); an app may give it as ``#token=`` instead, which never leaves the browser and is dropped from the
    address. With it the page lists, stars and follows changes. A ``?select`` popup uses only a token given to it."""
    token = "s3cret+tok/en=&x"  # base64-like: "+" and "&" must survive
    auth = {"Authorization": f"Bearer {token}"}
    sam = Host(name="sam", models_body=sam_body())
    with serve_fleet(tmp_path, {"sam": {"kind": "llama-swap", "base_url": sam.url}}, {"sam": sam},
                     token=token) as fleet:
        page = chromium.new_context().new_page()
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        view = View(page, fleet)
        all_ids = ["sam/gpt-oss-20b", "sam/qwen3-coder-30b", "sam/unsloth/Qwen3:Q4_K_M"]

        page.goto(fleet.url + "/")  # no token: the page says so and asks
        expect(page.locator("#live")).to_contain_text("needs its token", timeout=LIVE_WITHIN_MS)
        page.locator("#token").fill("wrong-token")
        page.locator("#token-form button").click()
        expect(page.locator("#live")).to_contain_text("token was refused", timeout=LIVE_WITHIN_MS)
        page.locator("#token").fill(token)
        page.locator("#token-form button").click()
        view.expect_ids("sam", all_ids)
        expect(page.locator("#token-form")).to_have_count(0)

        star = view.row("sam", "sam/qwen3-coder-30b").get_by_role("button", name=re.compile("favorite"))
        star.click()
        view.expect_ids("favorites", ["sam/qwen3-coder-30b"])
        assert httpx.get(fleet.url + "/api/favorites", headers=auth).json()["favorites"] == ["sam/qwen3-coder-30b"]
        page.evaluate("window.notReloaded = true")
        fleet.cli("favorites", "add", "sam/gpt-oss-20b")  # another process: the page polls with its token
        view.expect_ids("favorites", ["sam/qwen3-coder-30b", "sam/gpt-oss-20b"])
        assert page.evaluate("window.notReloaded") is True
        page.reload()  # the tab keeps the token
        view.expect_ids("favorites", ["sam/qwen3-coder-30b", "sam/gpt-oss-20b"])
        page.context.close()

        app = chromium.new_context().new_page()  # an app: the token in the fragment, %-encoded or not
        app.on("request", lambda request: requests.append(request.url))
        fragment = "#token=" + token.replace("&", "%26")
        app.goto(f"{fleet.url}/?select={fleet.url}" + fragment)
        View(app, fleet).expect_ids("sam", all_ids)
        assert app.url == f"{fleet.url}/?select={fleet.url}"  # the token left the address
        app.goto(f"{fleet.url}/?select={fleet.url}")  # select mode: nothing kept for the next page
        expect(app.locator("#live")).to_contain_text("needs its token", timeout=LIVE_WITHIN_MS)
        app.goto(fleet.url + "/")
        expect(app.locator("#live")).to_contain_text("needs its token", timeout=LIVE_WITHIN_MS)
        app.evaluate("fragment => { location.hash = fragment; }", fragment)  # added to an open page: taken too
        View(app, fleet).expect_ids("sam", all_ids)
        assert app.url == f"{fleet.url}/"
        app.goto(f"{fleet.url}/?select={fleet.url}")  # a kept token is not used where another site may be the opener
        expect(app.locator("#live")).to_contain_text("needs its token", timeout=LIVE_WITHIN_MS)
        assert not any("tok" in url for url in requests)  # never in any request
        app.context.close()


def test_host_text_is_shown_as_text(chromium: Any, tmp_path: Path) -> None:
    hostile = '<img src=x onerror="window.pwned=1"><b>bold</b>'
    body = llama_swap_body("evil")
    body["data"][0]["name"] = hostile
    host = Host(name="evil", models_body=body)
    with serve_fleet(tmp_path, {"evil": {"kind": "llama-swap", "base_url": host.url}}, {"evil": host}) as fleet:
        view = open_page(chromium, fleet)
        expect(view.row("evil", "evil/evil").locator(".name")).to_have_text(hostile)
        assert view.page.locator("main img, main b").count() == 0
        assert view.page.evaluate("window.pwned") is None
        assert view.problems == []
        view.page.context.close()


def test_phone_width_and_screenshots(chromium: Any, fleet: Fleet, tmp_path: Path) -> None:
    put(fleet, "sam/qwen3-coder-30b", "emb/nomic-embed-text", "deepseek/deepseek-chat")  # the last one: hidden
    desktop = open_page(chromium, fleet, viewport={"width": 900, "height": 1000})
    desktop.expect_ids("favorites", ["sam/qwen3-coder-30b", "emb/nomic-embed-text"])
    desktop.row("sam", "sam/gpt-oss-20b").locator(".name").click()  # show a chosen row too
    desktop.section("cloud").locator("button.toggle").click()  # and a folded group
    save_screenshot(desktop.page, tmp_path, "picker.png")
    desktop.page.context.close()

    phone = open_page(chromium, fleet, viewport={"width": 360, "height": 780}, is_mobile=True, has_touch=True)
    phone.expect_ids("favorites", ["sam/qwen3-coder-30b", "emb/nomic-embed-text"])
    widths = phone.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page scrolls sideways at phone width: {widths}"
    for box in phone.page.locator("[data-model-id]").evaluate_all(
            "rows => rows.map(r => r.getBoundingClientRect()).map(b => [b.left, b.right])"):
        assert box[0] >= 0 and box[1] <= widths[1]
    save_screenshot(phone.page, tmp_path, "picker-phone.png")
    assert desktop.problems == [] and phone.problems == []
    phone.page.context.close()


# --- which model is hot (issue 24) ------------------------------------------------------------------------------


def state_of(view: View, section: str, model_id: str) -> Any:
    return view.row(section, model_id).locator(".state")


def test_model_states_read_as_text_with_the_hint_of_a_limited_host(view: View) -> None:
    expect(state_of(view, "sam", "sam/qwen3-coder-30b")).to_have_text("hot")
    expect(state_of(view, "sam", "sam/gpt-oss-20b")).to_have_text("cold")
    expect(state_of(view, "rig", "rig/gemma-3-4b")).to_have_text("hot")
    expect(state_of(view, "rig", "rig/qwen3-8b")).to_have_text("cold")
    expect(view.row("emb", "emb/nomic-embed-text").locator(".state")).to_have_count(0)  # the host does not say
    # Not colour alone: the row's accessible name says it too.
    expect(view.row("rig", "rig/qwen3-8b")).to_have_attribute("aria-label", re.compile(r"cold \(not loaded"))
    # llama.cpp's router holds one model (--models-max 1, max_instances in /props): choosing a cold one swaps.
    expect(view.section("rig").locator(".hint")).to_have_text(
        "Holds 1 model at a time: choosing a cold model loads it first, and may unload the hot one.")
    expect(view.section("sam").locator(".hint")).to_have_count(0)  # llama-swap does not say its limit
    expect(view.section("rig").locator(".count")).to_have_text("2 models, 1 hot")
    view.row("rig", "rig/qwen3-8b").locator(".name").click()
    expect(view.page.locator("#live")).to_contain_text("cold: its first request loads it")
    assert view.problems == []


def test_a_hidden_favorite_shows_why(view: View) -> None:
    put(view.fleet, "deepseek/deepseek-chat")
    hidden = view.section("favorites").locator('[data-hidden-favorite="deepseek/deepseek-chat"]')
    expect(hidden).to_contain_text("hidden: provider deepseek is disabled: set BOOCODER_TEST_NEVER_SET",
                                   timeout=LIVE_WITHIN_MS)
    assert view.ids("favorites") == []  # hidden, not listed as a choice


def test_a_swap_on_a_real_router_is_seen_live_on_the_page(chromium: Any, llama_router: Any, tmp_path: Path) -> None:
    """llama.cpp's router (--models-max 1): a chat loads alpha, then one to beta unloads alpha; the page shows both
    changes by itself (the router's /models/sse; refresh_s is 300, so polling could not)."""
    import httpx as client

    providers = {"box": {"kind": "llama-cpp", "base_url": llama_router.url, "refresh_s": 300, "label": "Router"}}
    with serve_fleet(tmp_path, providers, {}) as fleet:
        view = open_page(chromium, fleet)
        expect(state_of(view, "box", "box/alpha")).to_have_text("cold", timeout=LIVE_WITHIN_MS)
        expect(state_of(view, "box", "box/beta")).to_have_text("cold")
        view.page.evaluate("window.notReloaded = true")
        for model, other in (("alpha", "beta"), ("beta", "alpha")):
            body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
            assert client.post(llama_router.url + "/v1/chat/completions", json=body, timeout=120).status_code == 200
            expect(state_of(view, "box", f"box/{model}")).to_have_text("hot", timeout=LIVE_WITHIN_MS)
            expect(state_of(view, "box", f"box/{other}")).to_have_text("cold", timeout=LIVE_WITHIN_MS)
        assert view.page.evaluate("window.notReloaded") is True
        assert view.problems == []
        view.page.context.close()


def synthetic_catalog(hosts: int = 3, per_host: int = 40) -> dict[str, Any]:
    """A catalog as GET /api/models gives it (schemas/models.schema.json), for a fleet too big to stand up here."""
    states = ["loaded", "loading", "unloaded", "sleeping", None]
    providers = []
    for h in range(hosts):
        models = [{"id": f"host{h}/model-{n:02d}", "provider": f"host{h}", "model": f"model-{n:02d}",
                   "name": f"Model {n:02d}", "context_window": 32768, "max_output": None, "favorite": False,
                   "state": states[n % 5] if n < 5 else "unloaded",
                   "load_progress": 0.4 if n % 5 == 1 else None} for n in range(per_host)]
        providers.append({"id": f"host{h}", "label": f"Host {h}", "kind": "llama-cpp", "status": "online",
                          "error": None, "max_loaded": 1, "models": models})
    catalog = {"favorites": [], "hidden_favorites": [], "providers": providers}
    assert_valid("models.schema.json", catalog)
    return catalog


def test_a_big_fleet_is_one_screen_of_collapsed_groups_and_works_by_keyboard(chromium: Any, fleet: Fleet) -> None:
    """3 hosts x 40 models: the groups start collapsed (one screen of headings with their counts); a heading's
    button opens its group, by keyboard too; arrows move through the rows one can see."""
    import json

    context = chromium.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    body = json.dumps(synthetic_catalog())
    page.route("**/api/models", lambda route: route.fulfill(status=200, content_type="application/json", body=body))
    page.route("**/api/events", lambda route: route.fulfill(status=404, body=""))  # polling: the catalog above
    view = View(page, fleet)
    page.on("console", lambda m: view.problems.append(m.text) if m.type == "error" and "404" not in m.text else None)
    page.on("pageerror", lambda error: view.problems.append(str(error)))
    page.goto(fleet.url + "/")
    toggles = page.locator("button.toggle")
    expect(toggles).to_have_count(3, timeout=LIVE_WITHIN_MS)
    for index in range(3):
        expect(toggles.nth(index)).to_have_attribute("aria-expanded", "false")
        expect(view.section(f"host{index}").locator(".count")).to_have_text("40 models, 1 hot")
    assert page.evaluate("document.documentElement.scrollHeight") <= 900  # one screen of headings
    expect(page.locator("[data-model-id]:visible")).to_have_count(0)

    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Host 0"
    page.keyboard.press("Enter")  # opens host0's group
    expect(toggles.nth(0)).to_have_attribute("aria-expanded", "true")
    expect(view.section("host0").locator("[data-model-id]:visible")).to_have_count(40)
    labels = [state_of(view, "host0", f"host0/model-{n:02d}").text_content() for n in range(4)]
    assert labels == ["hot", "loading 40 %", "cold", "asleep"]
    expect(view.row("host0", "host0/model-04").locator(".state")).to_have_count(0)  # null: nothing claimed
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.dataset.modelId") == "host0/model-00"
    page.keyboard.press("End")  # the last row one can see, not one in a closed group
    assert page.evaluate("document.activeElement.dataset.modelId") == "host0/model-39"
    page.keyboard.press("Tab")  # past host0's rows: host1's heading
    assert page.evaluate("document.activeElement.textContent") == "Host 1"
    page.keyboard.press(" ")
    expect(toggles.nth(1)).to_have_attribute("aria-expanded", "true")
    toggles.nth(0).click()  # and closed again with the mouse
    expect(toggles.nth(0)).to_have_attribute("aria-expanded", "false")
    expect(view.section("host0").locator("[data-model-id]:visible")).to_have_count(0)
    page.reload()  # the tab remembers which groups were opened
    expect(toggles.nth(1)).to_have_attribute("aria-expanded", "true", timeout=LIVE_WITHIN_MS)
    expect(toggles.nth(0)).to_have_attribute("aria-expanded", "false")
    assert view.problems == []
    context.close()
