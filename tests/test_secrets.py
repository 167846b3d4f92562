"""No secret value ever lands in an artefact: config, cache, database, logs, errors, API answers, snapshots."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi.testclient import TestClient

from boocoder_bridge import Bridge
from boocoder_bridge.web.app import create_app
from tests.fakehost import llama_swap_body
from tests.helpers import deepseek, llama_swap

SECRETS = {"CLOUD_KEY": "sk-SECRET-cloud-5f1e9a", "DEEPSEEK_API_KEY": "sk-SECRET-deepseek-77c2",
           "LOCKED_KEY": "sk-SECRET-locked-0b3d"}


def test_no_secret_in_any_artefact(hosts, write_registry, run_cli, monkeypatch, caplog, isolated) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)
    cloud = hosts(name="cloud", models_body={"data": [{"id": "cloud-chat"}]})
    locked = hosts(name="locked", fault="status", fault_arg=401)
    local = hosts(name="local", models_body=llama_swap_body("coder"))
    registry = write_registry({"default_provider": "local", "providers": {
        "local": llama_swap(local.url),
        "cloud": {"kind": "openai-compatible", "base_url": cloud.url, "api_key_env": "CLOUD_KEY"},
        "locked": llama_swap(locked.url, api_key_env="LOCKED_KEY"),
        "deepseek": deepseek()}})
    outputs = []
    for args in (["models", "--json"], ["models", "--refresh"], ["providers", "--json"], ["validate"],
                 ["resolve", "cloud/cloud-chat", "--json"], ["resolve", "deepseek-chat"], ["generate"],
                 ["generate", "--out", str(isolated / "opencode.json")], ["generate", "--offline"],
                 ["favorites", "add", "cloud/cloud-chat"], ["favorites", "list", "--json"], ["plugins"],
                 ["resolve", "bad id"], ["resolve", "locked/x", "--purpose", "nope"]):
        result = run_cli("--registry", str(registry), *args)
        outputs += [result.out, result.err]
    with TestClient(create_app(Bridge.load(registry)), base_url="http://127.0.0.1") as api:  # with its lifespan
        for path in ("/api/models?refresh=1", "/api/resolve?model=cloud/cloud-chat", "/api/opencode-config",
                     "/api/resolve?model=%20", "/api/favorites"):
            outputs.append(api.get(path).text)

    # The keys were really used (so the scan below could have found them) ...
    assert {r.headers.get("Authorization") for r in cloud.requests} == {"Bearer " + SECRETS["CLOUD_KEY"]}
    assert {r.headers.get("Authorization") for r in locked.requests} == {"Bearer " + SECRETS["LOCKED_KEY"]}
    assert "{env:DEEPSEEK_API_KEY}" in "".join(outputs)
    # ... and appear nowhere.
    artefacts = {"cli and api output": "\n".join(outputs), "logs": caplog.text}
    for file in [*isolated.rglob("*"), *(Path(__file__).parent / "__snapshots__").rglob("*")]:
        if file.is_file():
            artefacts[str(file)] = file.read_bytes().decode("utf-8", "replace")
    assert any(name.endswith("favorites.sqlite3") for name in artefacts)
    assert any(name.endswith("discovery-cache.json") for name in artefacts)
    for where, text in artefacts.items():
        for name, value in SECRETS.items():
            assert value not in text, f"the value of {name} leaked into {where}"
