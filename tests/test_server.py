"""The HTTP API, as a real uvicorn server on a free loopback port, fuzzed with schemathesis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from boocoder_bridge.opencode.config import render
from boocoder_bridge.settings import MAX_REQUEST_BYTES
from tests.conftest import unused_port
from tests.fakehost import FakeHost, llama_swap_body
from tests.helpers import deepseek, down, llama_swap, registry_data, start_server


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[tuple[str, FakeHost]]:
    folder = tmp_path_factory.mktemp("api")
    sam = FakeHost(name="sam", models_body=llama_swap_body("coder", "unsloth/Qwen3:Q4_K_M",
                                                           contexts={"coder": 65536})).start()
    registry = folder / "fleet.json"
    registry.write_text(json.dumps(registry_data({
        "sam": llama_swap(sam.url), "down": down(timeout_s=0.3),
        "deepseek": deepseek(enabled_if_env="NOT_SET_ANYWHERE_X")})))
    opencode = folder / "opencode"  # dispatch plans name it; nothing here runs it (test_node_contract.py does)
    opencode.write_text("#!/bin/sh\nexit 0\n")
    opencode.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "BOOCODER_BRIDGE_TOKEN"}
    process, url = start_server(registry, folder / "state", env={**env, "BOOCODER_BRIDGE_OPENCODE": str(opencode)})
    yield url, sam
    process.terminate()
    process.wait(timeout=10)
    sam.stop()


def test_catalog_and_favorites_round_trip(api) -> None:
    url, _ = api
    with httpx.Client(base_url=url) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        put = client.put("/api/favorites/sam/unsloth/Qwen3:Q4_K_M")
        assert put.status_code == 200 and "sam/unsloth/Qwen3:Q4_K_M" in put.json()["favorites"]
        client.put("/api/favorites/coder")  # legacy bare ID, stored composite
        client.put("/api/favorites/down/ghost")
        catalog = client.get("/api/models", params={"refresh": 1}).json()
        assert [m["id"] for m in catalog["favorites"]][:2] == ["sam/unsloth/Qwen3:Q4_K_M", "sam/coder"]
        assert "down/ghost" not in [m["id"] for m in catalog["favorites"]]  # offline: hidden
        assert "down/ghost" in client.get("/api/favorites").json()["favorites"]  # but kept
        groups = {g["id"]: g for g in catalog["providers"]}
        assert groups["down"]["status"] == "offline" and groups["deepseek"]["status"] == "disabled"
        deleted = client.delete("/api/favorites/sam%2Funsloth%2FQwen3:Q4_K_M")
        assert "sam/unsloth/Qwen3:Q4_K_M" not in deleted.json()["favorites"]
        route = client.get("/api/resolve", params={"model": "coder", "purpose": "compaction"}).json()
        assert (route["id"], route["context_window"], route["legacy"]) == ("sam/coder", 65536, True)
        served = client.get("/api/opencode-config")
        assert served.headers["content-type"] == "application/json"
        config = served.json()
        assert "coder" in config["provider"]["sam"]["models"]
        assert served.text == render(config)  # the bridge's own rendering, streamed in pieces


def test_provider_rows_are_served(api) -> None:
    url, sam = api
    rows = {row["id"]: row for row in httpx.get(url + "/api/providers", params={"refresh": 1}).json()["providers"]}
    assert list(rows) == ["sam", "down", "deepseek"]  # registry order
    assert (rows["sam"]["status"], rows["sam"]["model_count"], rows["sam"]["default"]) == ("online", 2, True)
    assert rows["sam"]["base_url"] == sam.url and rows["sam"]["route_base_url"] == sam.url + "/v1"
    assert rows["down"]["status"] == "offline" and "cannot connect" in rows["down"]["error"]
    assert (rows["deepseek"]["status"], rows["deepseek"]["enabled"]) == ("disabled", False)


@pytest.mark.parametrize(("method", "path", "params", "status"), [
    ("GET", "/api/resolve", {"model": "sam/"}, 422),
    ("GET", "/api/resolve", {"model": "a b"}, 422),
    ("GET", "/api/resolve", {}, 422),
    ("GET", "/api/resolve", {"model": "sam/x", "purpose": "nope"}, 422),
    ("PUT", "/api/favorites/sam%2F", {}, 422),
    ("GET", "/api/resolve", {"model": "deepseek-chat"}, 409),
])
def test_bad_input_gets_a_json_error_without_a_trace(api, method, path, params, status) -> None:
    url, _ = api
    response = httpx.request(method, url + path, params=params)
    assert response.status_code == status
    assert set(response.json()) == {"error"} and "Traceback" not in response.text


def test_non_loopback_bind_needs_a_token(tmp_path) -> None:
    registry = tmp_path / "r.json"
    registry.write_text('{"default_provider": "a", "providers": {"a": {"kind": "llama-swap", '
                        '"base_url": "http://127.0.0.1:9"}}}')
    env = {k: v for k, v in os.environ.items() if k != "BOOCODER_BRIDGE_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "boocoder_bridge", "--registry", str(registry), "serve",
                           "--host", "0.0.0.0", "--port", str(unused_port())], env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2 and "BOOCODER_BRIDGE_TOKEN" in done.stderr and "Traceback" not in done.stderr


def test_token_is_checked_on_every_request(tmp_path) -> None:
    registry = tmp_path / "r.json"
    registry.write_text('{"default_provider": "a", "providers": {"a": {"kind": "llama-swap", '
                        '"base_url": "http://127.0.0.1:9", "timeout_s": 0.2}}}')
    env = {**os.environ, "BOOCODER_BRIDGE_TOKEN": "t0ken-abc"}
    process, url = start_server(registry, tmp_path / "state", env=env)
    try:
        for path in ("/healthz", "/api/favorites", "/api/models"):
            assert httpx.get(url + path).status_code == 401
            assert httpx.get(url + path, headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert httpx.get(url + path, headers={"Authorization": "Bearer t0ken-abc"}).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture
def api_schema(api):
    url, _ = api
    return schemathesis.openapi.from_url(url + "/openapi.json")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_fuzz(case) -> None:
    """Every documented check, except that a schema-valid string may still be a bad model ID: which IDs are
    valid depends on the registry and on Unicode categories a JSON Schema pattern cannot say, and such an ID
    gets the documented 422 with a JSON error (asserted by the other checks)."""
    takes_an_id = case.operation.path in ("/api/resolve", "/api/favorites/{model_id}", "/api/dispatch", "/api/arena",
                                          "/api/compaction", "/api/task-model")
    excluded = [checks.positive_data_acceptance] if takes_an_id else []
    # The event stream never ends: read what comes within a second (the first catalog event comes at once).
    response = case.call(timeout=1 if case.operation.path == "/api/events" else None)
    if response.status_code == 413:  # a body over MAX_REQUEST_BYTES: refused unread, as documented (not a 4xx
        assert len(response.request.body or b"") > MAX_REQUEST_BYTES  # schemathesis expects for bad data)
        excluded.append(checks.negative_data_rejection)
    case.validate_response(response, excluded_checks=excluded)
