"""What a host in another language gets over HTTP (issue 20): the dispatch, arena, compaction and task-model
answers are the library's own, hooks applied; refusals as the CLI's; no secret in any answer; an OpenAPI
document a generator turns into a good client. Real HTTP on 127.0.0.1: the app runs in uvicorn in a thread, so a
plugin can be registered in-process. (tests/test_node_contract.py does the same from Node.js.)"""

from __future__ import annotations

import json
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from boocoder_bridge import Bridge, hookimpl
from boocoder_bridge.plugins import make_plugin_manager
from boocoder_bridge.settings import MAX_CONTESTANTS, MAX_PROMPT_PARTS
from boocoder_bridge.web.api import OpencodeConfig
from boocoder_bridge.web.app import OPERATION_IDS, bind, create_app, url_of
from tests.fakehost import llama_swap_body
from tests.helpers import deepseek, down, llama_swap

SERVE_OWN_CONTENT = '{"provider": {"mine": {"options": {"apiKey": "sk-serve-own-7731"}}}}'
CLOUD_KEY = "sk-cloud-5512"


class Choices:
    """A plugin answering every hook the new endpoints go through."""

    @hookimpl
    def choose_compaction_model(self, session, configured):
        return "emb/small" if configured is None else None  # None: the built-in choice (the configured one)

    @hookimpl
    def choose_task_model(self, kind, session, configured):
        return "emb/small" if kind == "title" else None

    @hookimpl
    def before_dispatch(self, route, argv, env):
        env["PLUGIN_SAW"] = route.id

    @hookimpl
    def arena_match(self, match):
        match.notes["judge"] = "plugin"


class Broken:
    @hookimpl
    def opencode_provider_entry(self, provider, entry):
        raise RuntimeError("broken on purpose")


@contextmanager
def serving(bridge: Bridge) -> Iterator[str]:
    """``create_app`` in a real uvicorn on a free loopback port, with its lifespan (the live catalog)."""
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(bridge), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@pytest.fixture
def fake_opencode(tmp_path: Path) -> Path:
    path = tmp_path / "opencode"
    path.write_text("#!/bin/sh\nprintf '\\033[1m\\033[32mgreen\\033[0m from %s\\tok\\r\\nbell\\007 end\\n' \"$3\"\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def fleet(hosts, write_registry, fake_opencode) -> Iterator[tuple[Bridge, str, Path]]:
    sam = hosts(name="sam", models_body=llama_swap_body("coder", contexts={"coder": 65536}))
    emb = hosts(name="emb", models_body=llama_swap_body("coder", "small"))
    cloud = hosts(name="cloud", models_body={"data": [{"id": "cloud-chat", "object": "model"}]})
    path = write_registry({"default_provider": "sam", "providers": {
        "sam": llama_swap(sam.url), "emb": llama_swap(emb.url), "down": down(timeout_s=0.3),
        "cloud": {"kind": "openai-compatible", "base_url": cloud.url, "api_key_env": "CLOUD_KEY"},
        "deepseek": deepseek(enabled_if_env="NOT_SET_ANYWHERE_X")}})
    pm = make_plugin_manager(entry_points=False)
    pm.register(Choices())
    pm.register(Broken(), name="broken-plugin")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(path.parent), "CLOUD_KEY": CLOUD_KEY,
           "OPENCODE_CONFIG_CONTENT": SERVE_OWN_CONTENT, "BOOCODER_BRIDGE_OPENCODE": str(fake_opencode),
           "BOOCODER_BRIDGE_OPENCODE_TUI": "off"}
    bridge = Bridge.load(path, path.parent / "state", env=env, plugin_manager=pm)
    with serving(bridge) as url:
        yield bridge, url, path


def one_line_error(response: httpx.Response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and "\n" not in body["error"], body
    for word in words:
        assert word in body["error"], (word, body)
    return body["error"]


def test_dispatch_plan_is_bridge_dispatch_with_hooks_and_the_clients_own_content(fleet) -> None:
    bridge, url, _ = fleet
    own = '{"share": "disabled", "provider": {"emb": {"options": {"baseURL": "http://127.0.0.1:9/v1"}}}}'
    body = {"model": "emb/coder", "prompt": ["--attach=x", "hi"], "opencode_config_content": own}
    plan = httpx.post(url + "/api/dispatch", json=body).json()
    expected = bridge.dispatch("emb/coder", ["--attach=x", "hi"], caller_content=own)
    assert plan["argv"] == expected.argv and plan["argv"][1:] == ["run", "-m", "emb/coder", "--", "--attach=x", "hi"]
    assert plan["env"] == expected.env and plan["env"]["PLUGIN_SAW"] == "emb/coder"  # before_dispatch ran
    assert plan["route"] == expected.route.model_dump() and plan["config_path"] == str(expected.config_path)
    content = json.loads(plan["env"]["OPENCODE_CONFIG_CONTENT"])
    assert content["share"] == "disabled" and "mine" not in content["provider"]  # the client's, never serve's own
    assert content["provider"]["emb"]["options"]["baseURL"] == bridge.resolve("emb/coder").base_url  # fleet wins

    assert any("broken-plugin" in w and "opencode_provider_entry" in w for w in plan["warnings"])
    assert httpx.put(url + "/api/favorites/emb/not-listed").status_code == 200  # leaves a note in the bridge
    again = httpx.post(url + "/api/dispatch", json=body).json()["warnings"]
    assert again == plan["warnings"] and not any("not-listed" in w for w in again)  # this call's warnings only

    acp = httpx.post(url + "/api/dispatch", json={"model": "coder", "mode": "acp"}).json()
    assert acp["argv"][1:] == ["acp"] and json.loads(acp["env"]["OPENCODE_CONFIG_CONTENT"])["model"] == "sam/coder"


def test_arena_compaction_and_task_model_go_through_the_hooks(fleet) -> None:
    bridge, url, _ = fleet
    arena = httpx.post(url + "/api/arena", json={"models": ["sam/coder", "emb/coder"]}).json()
    assert arena["notes"] == {"judge": "plugin"}
    assert [c["route"]["id"] for c in arena["contestants"]] == ["sam/coder", "emb/coder"]
    assert [c["argv"][-1] for c in arena["contestants"]] == ["--", "--"]  # the prompt goes after it
    assert {c["env"]["PLUGIN_SAW"] for c in arena["contestants"]} == {"sam/coder", "emb/coder"}

    chosen = httpx.get(url + "/api/compaction", params={"session": "coder"}).json()
    assert (chosen["model"]["id"], chosen["session"]["id"], chosen["context_window"]) == (
        "emb/small", "sam/coder", 65536)
    configured = httpx.get(url + "/api/compaction", params={"session": "coder", "configured": "sam/coder"}).json()
    assert configured["model"]["id"] == "sam/coder"
    assert bridge.compaction_model("coder").model.id == "emb/small"  # the same answer as the library's
    title = httpx.get(url + "/api/task-model", params={"kind": "title", "session": "sam/coder"}).json()
    summary = httpx.get(url + "/api/task-model", params={"kind": "summary", "session": "sam/coder"}).json()
    assert (title["id"], summary["id"]) == ("emb/small", "sam/coder")


def test_refusals_are_the_clis_each_one_line_naming_the_provider(fleet, run_cli) -> None:
    bridge, url, path = fleet
    one_line_error(httpx.get(url + "/api/resolve", params={"model": "emb/smal"}), 422, "did you mean emb/small")
    one_line_error(httpx.get(url + "/api/resolve", params={"model": "emd/small"}), 422, "did you mean emb/small")
    one_line_error(httpx.post(url + "/api/dispatch", json={"model": "emb/smal"}), 422, "did you mean emb/small")
    one_line_error(httpx.post(url + "/api/dispatch", json={"model": "down/x"}), 503, "provider down is offline")
    one_line_error(httpx.post(url + "/api/arena", json={"models": ["sam/coder", "down/x"]}), 503, "provider down")
    one_line_error(httpx.post(url + "/api/dispatch", json={"model": "deepseek-chat"}), 409, "deepseek",
                   "NOT_SET_ANYWHERE_X")
    one_line_error(httpx.get(url + "/api/task-model", params={"kind": "t", "session": "deepseek-chat"}), 409)
    one_line_error(httpx.post(url + "/api/arena", json={"models": ["sam/coder", "coder"]}), 422, "same model")
    # The CLI refuses the same ones, with exit 2 and 3 (offline stays exit 3, now HTTP 503).
    assert run_cli("--registry", str(path), "--state-dir", str(bridge.state_dir), "resolve", "emb/smal").code == 2
    assert run_cli("--registry", str(path), "--state-dir", str(bridge.state_dir), "run", "down/x", "hi").code == 3

    offline = httpx.get(url + "/api/resolve", params={"model": "down/x"}).json()
    assert (offline["available"], offline["provider_status"]) == (False, "offline")
    assert "cannot connect" in offline["provider_error"]
    online = httpx.get(url + "/api/resolve", params={"model": "emb/small", "purpose": "context"}).json()
    assert (online["id"], online["available"], online["provider_status"]) == ("emb/small", True, "online")
    one_line_error(httpx.get(url + "/api/resolve", params={"model": "small"}), 422, "sam does not list")


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"model": "emb/coder", "extra": 1}, 422, ("extra",)),
    ({"model": "emb/coder", "mode": "serve"}, 422, ("mode",)),
    ({"model": "emb/coder", "prompt": ["x"] * (MAX_PROMPT_PARTS + 1)}, 422, ("prompt",)),
    ({"model": "emb/coder", "opencode_config_content": "{not json"}, 400, ("not valid JSON",)),
    ({"model": "emb/coder", "opencode_config_content": "[1]"}, 400, ("not a JSON object",)),
    ({"prompt": ["x"]}, 422, ("model",)),
])
def test_bad_dispatch_bodies_get_one_line(fleet, body, status, words) -> None:
    _, url, _ = fleet
    one_line_error(httpx.post(url + "/api/dispatch", json=body), status, *words)


def test_too_many_contestants_are_refused_before_any_work(fleet) -> None:
    _, url, _ = fleet
    models = [f"emb/m{i}" for i in range(MAX_CONTESTANTS + 1)]
    one_line_error(httpx.post(url + "/api/arena", json={"models": models}), 422, "models")


def test_a_huge_body_is_refused_before_it_is_read_whole(fleet) -> None:
    _, url, _ = fleet
    big = json.dumps({"model": "emb/coder", "prompt": ["x" * 1000] * 5000}).encode()  # 5 MB
    one_line_error(httpx.post(url + "/api/dispatch", content=big, headers={"content-type": "application/json"}),
                   413, "4 MiB")
    chunked = (big[i:i + 65536] for i in range(0, len(big), 65536))  # no Content-Length: counted as it comes
    one_line_error(httpx.post(url + "/api/arena", content=chunked, headers={"content-type": "application/json"}),
                   413, "4 MiB")
    assert httpx.post(url + "/api/dispatch", json={"model": "emb/coder", "prompt": ["x" * 1000] * 200}
                      ).status_code == 200  # 200 kB: well under


def test_no_secret_in_any_answer(fleet) -> None:
    _, url, _ = fleet
    answers = [httpx.post(url + "/api/dispatch", json={"model": "cloud/cloud-chat", "prompt": ["hi"]}),
               httpx.post(url + "/api/dispatch", json={"model": "cloud/cloud-chat", "mode": "acp"}),
               httpx.post(url + "/api/arena", json={"models": ["cloud/cloud-chat", "sam/coder"]}),
               httpx.get(url + "/api/resolve", params={"model": "cloud/cloud-chat"}),
               httpx.get(url + "/api/compaction", params={"session": "cloud/cloud-chat"}),
               httpx.get(url + "/api/opencode-config")]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    for answer in answers:
        assert CLOUD_KEY not in answer.text and "sk-serve-own" not in answer.text
    content = json.loads(answers[0].json()["env"]["OPENCODE_CONFIG_CONTENT"])
    assert content["provider"]["cloud"]["options"]["apiKey"] == "{env:CLOUD_KEY}"


def test_openapi_is_a_good_client(fleet) -> None:
    _, url, _ = fleet
    doc = httpx.get(url + "/openapi.json").json()
    operations = {(path, method): op for path, methods in doc["paths"].items() for method, op in methods.items()}
    assert {key: op["operationId"] for key, op in operations.items()} == OPERATION_IDS
    assert {"listModels", "putFavorite", "deleteFavorite", "dispatch", "arena", "compaction", "taskModel",
            "resolve", "listProviders", "events", "health"} <= set(OPERATION_IDS.values())
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for key, op in operations.items():
        for status in ("401", "403", "421", "500"):
            assert op["responses"][status]["content"]["application/json"]["schema"] == error, (key, status)
        for status, answer in op["responses"].items():
            schema = next(iter(answer["content"].values()))["schema"]
            assert schema not in ({}, None), (key, status)  # every answer typed
            if status >= "400":
                assert schema == error, (key, status)
    assert "HTTPValidationError" not in json.dumps(doc)
    assert operations[("/api/opencode-config", "get")]["responses"]["200"]["content"]["application/json"][
        "schema"] == {"$ref": "#/components/schemas/OpencodeConfig"}
    event = operations[("/api/events", "get")]["responses"]["200"]["content"]["text/event-stream"]["schema"]
    assert event["properties"]["data"]["contentSchema"] == {"$ref": "#/components/schemas/CatalogEvent"}
    assert {"CatalogEvent", "Catalog", "DispatchPlan", "ArenaPlan", "CompactionChoice", "Resolution"} <= set(
        doc["components"]["schemas"])
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    config = httpx.get(url + "/api/opencode-config").json()
    typed = OpencodeConfig.model_validate(config)
    assert typed.provider["sam"].models["coder"].limit.context == 65536


def test_arena_json_answers_are_plain_text(fleet, run_cli) -> None:
    bridge, _, path = fleet
    shown = run_cli("--registry", str(path), "--state-dir", str(bridge.state_dir), "arena", "sam/coder", "emb/coder",
                    "--prompt", "hi", "--json", "--opencode", bridge.env["BOOCODER_BRIDGE_OPENCODE"])
    assert shown.code == 0, shown.err
    answers: list[dict[str, Any]] = json.loads(shown.out)["answers"]
    assert [a["output"] for a in answers] == ["green from sam/coder\tok\nbell\\x07 end",
                                              "green from emb/coder\tok\nbell\\x07 end"]
    table = run_cli("--registry", str(path), "--state-dir", str(bridge.state_dir), "arena", "sam/coder",
                    "emb/coder", "--prompt", "hi", "--opencode", bridge.env["BOOCODER_BRIDGE_OPENCODE"])
    assert table.code == 0 and "green from sam/coder" in table.out and "\x1b" not in table.out
