"""Hooks: built-in behaviour as default plugins, third-party plugins through a real entry point, and every
host call site agreeing through the one resolver."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from boocoder_bridge import Bridge, ModelIdError, ProviderUnavailableError, Refused, hookimpl
from boocoder_bridge.plugins import make_plugin_manager
from tests.fakehost import llama_swap_body
from tests.helpers import deepseek, down, llama_swap
from tests.nested_venv import make_venv, pip_install

PLUGIN_PKG = Path(__file__).parent / "plugin_pkg"


@pytest.fixture
def fake_opencode(tmp_path: Path) -> str:
    """Dispatch only builds argv here; the real binary runs in test_opencode_e2e.py."""
    path = tmp_path / "opencode"
    path.write_text("#!/bin/sh\necho fake opencode \"$@\"\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.fixture
def fleet(hosts, write_registry):
    sam = hosts(name="sam", models_body=llama_swap_body("coder", "same", "small", contexts={"coder": 65536},
                                                       outputs={"coder": 8192}))
    emb = hosts(name="emb", models_body=llama_swap_body("same"))
    path = write_registry({
        "default_provider": "sam",
        "providers": {
            "sam": llama_swap(sam.url, sidecar_url=sam.url + "/sc"),
            "emb": llama_swap(emb.url),
            "down": down(timeout_s=0.3),
            "deepseek": deepseek(),
        },
    })
    return path, sam, emb


def bridge_with(path: Path, *plugins: object) -> Bridge:
    pm = make_plugin_manager(entry_points=False)
    for plugin in plugins:
        pm.register(plugin)
    return Bridge.load(path, plugin_manager=pm)


def test_every_call_site_agrees_for_the_same_id(fleet, fake_opencode) -> None:
    path, sam, _ = fleet
    bridge = bridge_with(path)
    for model_id in ("coder", "sam/coder", "llama-swap/coder"):
        dispatch = bridge.dispatch(model_id, ["hi"], opencode=fake_opencode)
        match = bridge.arena_match([model_id, "emb/same"], opencode=fake_opencode)
        compaction = bridge.compaction_model(model_id)
        task = bridge.task_model("title", model_id)
        routes = [dispatch.route, match.contestants[0].route, compaction.model, compaction.session, task,
                  bridge.resolve(model_id, "context")]
        assert {(r.id, r.provider, r.model, r.base_url, r.upstream_model, r.context_window, r.max_output)
                for r in routes} == {("sam/coder", "sam", "coder", sam.url + "/sc/v1", "coder", 65536, 8192)}
        assert bridge.context_window(model_id) == compaction.context_window == 65536
        assert dispatch.argv == [fake_opencode, "run", "-m", "sam/coder", "--", "hi"]
        assert match.contestants[0].argv == [fake_opencode, "run", "-m", "sam/coder", "--"]
        assert set(dispatch.env) == {"OPENCODE_CONFIG", "OPENCODE_CONFIG_CONTENT"}
        assert dispatch.env["OPENCODE_CONFIG"] == str(dispatch.config_path) and match.config_path == \
            dispatch.config_path
        content = json.loads(dispatch.env["OPENCODE_CONFIG_CONTENT"])  # the fleet's providers, winning
        assert content["provider"] == json.loads(dispatch.config_path.read_text())["provider"]
        assert "coder" in json.loads(dispatch.config_path.read_text())["provider"]["sam"]["models"]


def test_acp_mode(fleet, fake_opencode) -> None:
    path, _, _ = fleet
    dispatch = bridge_with(path).dispatch("emb/same", mode="acp", opencode=fake_opencode)
    assert dispatch.argv == [fake_opencode, "acp"] and dispatch.opencode_model == "emb/same"


def test_arena_json_never_prints_the_callers_config_content(fleet, fake_opencode, run_cli, monkeypatch) -> None:
    """The dispatch env carries the caller's own OPENCODE_CONFIG_CONTENT (it may hold a literal key): a host gets
    it in ``Dispatch.env``, but ``arena --json`` must not print it."""
    path, _, _ = fleet
    caller = json.dumps({"provider": {"mine": {"options": {"apiKey": "sk-caller-4242"}}}})
    monkeypatch.setenv("OPENCODE_CONFIG_CONTENT", caller)
    dispatch = Bridge.load(path).dispatch("sam/same", opencode=fake_opencode)
    assert "sk-caller-4242" in dispatch.env["OPENCODE_CONFIG_CONTENT"]  # what opencode really gets
    shown = run_cli("--registry", str(path), "arena", "sam/same", "emb/same", "--json", "--opencode", fake_opencode)
    assert shown.code == 0, shown.err
    assert "sk-caller-4242" not in shown.out + shown.err
    envs = [c["env"] for c in json.loads(shown.out)["contestants"]]
    assert all("not shown" in env["OPENCODE_CONFIG_CONTENT"] and env["OPENCODE_CONFIG"] for env in envs)


def test_arena_rules(fleet, fake_opencode) -> None:
    path, _, _ = fleet
    bridge = bridge_with(path)
    match = bridge.arena_match(["sam/same", "emb/same"], opencode=fake_opencode)  # same name, two hosts
    assert [c.route.id for c in match.contestants] == ["sam/same", "emb/same"]
    with pytest.raises(ModelIdError, match="same model on the same provider"):
        bridge.arena_match(["coder", "sam/coder"], opencode=fake_opencode)
    with pytest.raises(ModelIdError, match="at least two"):
        bridge.arena_match(["coder"], opencode=fake_opencode)
    with pytest.raises(ProviderUnavailableError, match="down is offline"):
        bridge.arena_match(["coder", "down/x"], opencode=fake_opencode)
    with pytest.raises(ProviderUnavailableError, match="DEEPSEEK_API_KEY"):
        bridge.arena_match(["coder", "deepseek-chat"], opencode=fake_opencode)


def test_task_and_compaction_defaults_and_configured(fleet) -> None:
    path, _, _ = fleet
    bridge = bridge_with(path)
    assert bridge.task_model("title", "emb/same").id == "emb/same"  # the session's own model, same host
    assert bridge.task_model("title", "emb/same", configured="small").id == "sam/small"
    compaction = bridge.compaction_model("sam/small", configured="coder")
    assert (compaction.model.id, compaction.session.id, compaction.context_window) == ("sam/coder", "sam/small",
                                                                                       None)


class Chooser:
    @hookimpl
    def choose_task_model(self, kind, session, configured):
        return "sam/small" if kind == "title" else None

    @hookimpl
    def choose_compaction_model(self, session, configured):
        return "sam/coder"

    @hookimpl
    def context_window(self, provider, model):
        return 4096 if model == "small" else None

    @hookimpl
    def before_dispatch(self, route, argv, env):
        argv.append("--print-logs")
        env["FLEET_ROUTE"] = route.id


def test_plugins_choose_and_supply(fleet, fake_opencode) -> None:
    path, _, _ = fleet
    bridge = bridge_with(path, Chooser())
    assert bridge.task_model("title", "emb/same").id == "sam/small"
    assert bridge.task_model("summary", "emb/same").id == "emb/same"  # None: next plugin (the default)
    assert bridge.compaction_model("emb/same").model.id == "sam/coder"
    assert bridge.context_window("sam/small") == 4096  # the resolver did not know it
    assert bridge.context_window("sam/coder") == 65536  # the host's own answer wins over plugins
    assert bridge.context_window("emb/same") is None
    dispatch = bridge.dispatch("coder", ["hi"], opencode=fake_opencode, options=["--format", "json"])
    # What a plugin appends is an opencode option, before "--"; the prompt stays the message after it.
    assert dispatch.argv == [fake_opencode, "run", "-m", "sam/coder", "--format", "json", "--print-logs", "--", "hi"]
    assert dispatch.env["FLEET_ROUTE"] == "sam/coder"
    acp = bridge.dispatch("coder", mode="acp", opencode=fake_opencode)
    assert acp.argv == [fake_opencode, "acp", "--print-logs"]  # no "--" and no prompt in ACP mode


class Broken:
    @hookimpl
    def choose_task_model(self, kind, session, configured):
        raise RuntimeError("kaboom")

    @hookimpl
    def opencode_provider_entry(self, provider, entry):
        raise Refused("not allowed here")

    @hookimpl
    def before_dispatch(self, route, argv, env):
        if route.model == "small":
            raise Refused("small models may not run coder tasks")


def test_a_failing_plugin_is_named_and_skipped(fleet, fake_opencode) -> None:
    path, _, _ = fleet
    bridge = bridge_with(path, Broken())
    assert bridge.task_model("title", "emb/same").id == "emb/same"
    config, _ = bridge.opencode_config()
    assert "coder" in config["provider"]["sam"]["models"]  # Refused is no veto in this hook: skipped
    assert any("failed in choose_task_model: RuntimeError: kaboom" in w for w in bridge.warnings)
    assert any("failed in opencode_provider_entry" in w for w in bridge.warnings)
    assert bridge.warnings[0].startswith("plugin tests.test_plugins.Broken failed")
    assert len(bridge.warnings) == 2  # reported once, not once per call
    with pytest.raises(Refused, match="small models"):
        bridge.dispatch("small", ["hi"], opencode=fake_opencode)


class FewerArguments:
    """pluggy lets an implementation take fewer arguments than the spec names."""

    @hookimpl
    def choose_task_model(self, kind):
        return "sam/small" if kind == "title" else None

    @hookimpl
    def before_dispatch(self, argv):
        argv.append("--fewer")


class Wrapping:
    """A new-style wrapper: it runs around the other implementations and may change their answer."""

    @hookimpl(wrapper=True)
    def choose_task_model(self, kind):
        chosen = yield
        return "emb/same" if kind == "summary" else chosen


class Silent:
    def __init__(self) -> None:
        self.asked = 0

    @hookimpl
    def choose_compaction_model(self, session, configured):
        self.asked += 1
        return None


class Answering:
    @hookimpl
    def choose_compaction_model(self):
        return "sam/small"


def test_fewer_arguments_and_wrappers_go_through_pluggy(fleet, fake_opencode) -> None:
    path, _, _ = fleet
    bridge = bridge_with(path, FewerArguments(), Wrapping())
    assert bridge.task_model("title", "emb/same").id == "sam/small"
    assert bridge.task_model("summary", "sam/coder").id == "emb/same"  # the wrapper's answer, a model ID
    assert bridge.task_model("other", "sam/coder").id == "sam/coder"  # the wrapper kept the default's answer
    assert bridge.dispatch("coder", ["hi"], opencode=fake_opencode).argv[-3:] == ["--fewer", "--", "hi"]
    assert bridge.warnings == []


def test_firstresult_stops_at_the_first_answer(fleet) -> None:
    path, _, _ = fleet
    silent = Silent()
    bridge = bridge_with(path, silent, Answering())  # Answering registered last, so asked first
    assert bridge.compaction_model("emb/same").model.id == "sam/small"
    assert silent.asked == 0
    assert bridge_with(path, Answering(), silent).compaction_model("emb/same").model.id == "sam/small"
    assert silent.asked == 1  # asked first this time; its None lets the next plugin answer


def test_the_example_plugin_annotates_and_vetoes(fleet, fake_opencode, monkeypatch) -> None:
    """tests/plugin_pkg's arena_match and before_dispatch, run in-process (its entry point is tested below)."""
    path, sam, _ = fleet
    sam.models_body = llama_swap_body("coder", "same", "small", "forbidden-one")  # listed: only the plugin refuses
    monkeypatch.syspath_prepend(str(PLUGIN_PKG))
    import boocoder_testplugin

    bridge = bridge_with(path, boocoder_testplugin)
    match = bridge.arena_match(["sam/coder", "emb/same"], opencode=fake_opencode)
    assert match.notes == {"checked_by": "testplugin"}
    assert [c.env["TESTPLUGIN_SEEN"] for c in match.contestants] == ["sam/coder", "emb/same"]
    with pytest.raises(Refused, match="forbidden models may not compete"):
        bridge.arena_match(["sam/forbidden-one", "emb/same"], opencode=fake_opencode)
    assert bridge.warnings == []


def test_opencode_not_found_is_clear(fleet, monkeypatch) -> None:
    path, _, _ = fleet
    monkeypatch.setenv("PATH", "/nonexistent")
    from boocoder_bridge.errors import OpencodeNotFoundError

    with pytest.raises(OpencodeNotFoundError, match="BOOCODER_BRIDGE_OPENCODE"):
        bridge_with(path).dispatch("coder")
    from tests.helpers import run_process

    result = run_process("--registry", str(path), "run", "coder", "hi", env={**os.environ})
    assert result.code == 6 and "no opencode binary" in result.err and "Traceback" not in result.err
    monkeypatch.setenv("BOOCODER_BRIDGE_OPENCODE", "/nonexistent/opencode")
    with pytest.raises(OpencodeNotFoundError, match="not an executable"):
        bridge_with(path).dispatch("coder")


@pytest.fixture(scope="module")
def plugin_venv(tmp_path_factory) -> Path:
    """A venv that sees this checkout's boocoder_bridge and has the test plugin installed for real."""
    venv = tmp_path_factory.mktemp("plugin") / "venv"
    pip_install(make_venv(venv), "--no-deps", "--no-build-isolation", str(PLUGIN_PKG))
    return venv


def test_third_party_plugin_through_its_entry_point(plugin_venv, hosts, write_registry, fake_opencode) -> None:
    ollama = hosts(name="ollama", extra={"/api/tags": {"models": [{"name": "llama3.2:3b"}, {"name": "qwen3:8b"},
                                                                {"name": "forbidden:1b"}]}})
    sam = hosts(name="sam", models_body=llama_swap_body("coder"))
    registry = write_registry({"default_provider": "sam", "providers": {
        "sam": llama_swap(sam.url),
        "box": {"kind": "ollama", "base_url": ollama.url}}})
    env = {k: v for k, v in os.environ.items() if k != "BOOCODER_BRIDGE_NO_ENTRY_POINTS"}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([plugin_venv / "bin" / "python", "-m", "boocoder_bridge", "--registry", str(registry),
                               *args], capture_output=True, text=True, env=env, timeout=120)

    listed = json.loads(cli("plugins", "--json").stdout)
    names = {p["name"]: p["hooks"] for p in listed["plugins"]}
    assert "ollama" in listed["kinds"]
    assert "opencode_provider_entry" in names["ollama"] and "register_provider_kinds" in names["ollama"]
    generated = cli("generate")
    assert generated.returncode == 0, generated.stderr
    config = json.loads(generated.stdout)
    assert sorted(config["provider"]["box"]["models"]) == ["forbidden:1b", "llama3.2:3b", "qwen3:8b"]  # new kind
    assert {p["options"]["timeout"] for p in config["provider"].values()} == {600000}  # the entry hook worked
    resolved = json.loads(cli("resolve", "box/qwen3:8b", "--json").stdout)
    assert resolved["context_window"] == 2048 and resolved["base_url"] == ollama.url + "/v1"
    task = cli("resolve", "coder")  # the broken plugin is loaded but only hurts when its hook runs
    assert task.returncode == 0
    arena = cli("arena", "sam/coder", "box/qwen3:8b", "--json", "--opencode", fake_opencode)
    assert arena.returncode == 0, arena.stderr
    match = json.loads(arena.stdout)
    assert match["notes"] == {"checked_by": "testplugin"}  # arena_match ran
    assert [c["env"]["TESTPLUGIN_SEEN"] for c in match["contestants"]] == ["sam/coder", "box/qwen3:8b"]
    vetoed = cli("arena", "sam/coder", "box/forbidden:1b", "--opencode", fake_opencode)
    assert vetoed.returncode == 5 and "forbidden models may not compete" in vetoed.stderr  # its veto stops the match
    # Without the plugin the same registry is an error that names the missing kind.
    plain = subprocess.run([sys.executable, "-m", "boocoder_bridge", "--registry", str(registry), "validate"],
                           capture_output=True, text=True, env={**env, "BOOCODER_BRIDGE_NO_ENTRY_POINTS": "1"})
    assert plain.returncode == 2 and "$.providers.box.kind" in plain.stderr and "ollama" in plain.stderr


def test_failing_third_party_plugin_is_reported_by_name(plugin_venv, write_registry, hosts) -> None:
    sam = hosts(name="sam", models_body=llama_swap_body("coder"))
    registry = write_registry({"default_provider": "sam", "providers": {
        "sam": llama_swap(sam.url)}})
    code = ("from boocoder_bridge import Bridge; import sys; b = Bridge.load(sys.argv[1]); "
            "print(b.task_model('title', 'coder').id); print('\\n'.join(b.warnings))")
    done = subprocess.run([plugin_venv / "bin" / "python", "-c", code, str(registry)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "sam/coder"
    assert "plugin broken failed in choose_task_model: RuntimeError: boom from the broken plugin" in done.stdout
