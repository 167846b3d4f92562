"""What ``serve`` watches besides its hosts' lists: its registry file (edits applied live, a bad edit kept out
and said, issue 21) and the hosts of the dispatch plans it handed out (a host that goes away is pushed as offline
on ``GET /api/events`` for hosts that run opencode themselves, issue 18). Real ``serve`` processes, real HTTP on
127.0.0.1; the dispatched host runs in its own process so it can be killed or frozen."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakehost import llama_swap_body
from tests.hostproc import HostProcess
from tests.live_fleet import EventReader, Fleet, Host, favorite_ids, group, serve_fleet


def write(fleet: Fleet, providers: dict[str, dict[str, Any]], default: str | None = None) -> None:
    """Edit the registry in place, as an editor that rewrites the file does."""
    fleet.registry.write_text(json.dumps({"default_provider": default or next(iter(providers)),
                                          "providers": providers}))


def providers_body(fleet: Fleet) -> dict[str, Any]:
    return httpx.get(fleet.url + "/api/providers").json()


def until(check: Any, timeout: float = 15) -> Any:
    """Poll ``check`` until it returns something true (the registry is looked at about once a second)."""
    deadline = time.monotonic() + timeout
    while True:
        if result := check():
            return result
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.1)


def group_ids(catalog: dict[str, Any]) -> list[str]:
    return [g["id"] for g in catalog["providers"]]


@pytest.fixture
def sam() -> Host:
    host = Host(name="sam", models_body=llama_swap_body("coder", "chat"))
    yield host
    host.stop()


@pytest.fixture
def pb() -> Host:
    host = Host(name="pb", models_body=llama_swap_body("b1", "b2"))
    yield host
    host.stop()


def test_registry_edits_are_applied_while_serving(tmp_path: Path, sam: Host, pb: Host) -> None:
    sam_only = {"sam": {"kind": "llama-swap", "base_url": sam.url}}
    moved = Host(name="moved", models_body=llama_swap_body("c1"))
    with serve_fleet(tmp_path, sam_only, {"sam": sam, "pb": pb, "moved": moved}) as fleet:
        events = EventReader(fleet.url)
        first = events.next()
        assert group_ids(first["catalog"]) == ["sam"]
        assert httpx.put(fleet.url + "/api/favorites/pb/b1").status_code == 422  # pb is not in the registry yet

        # A provider added: its loop starts, its models come as a new catalog version.
        both = {**sam_only, "pb": {"kind": "llama-swap", "base_url": pb.url, "refresh_s": 1}}
        write(fleet, both)
        added = events.until(lambda c: "pb" in group_ids(c) and group(c, "pb")["status"] == "online")
        assert [m["id"] for m in group(added["catalog"], "pb")["models"]] == ["pb/b1", "pb/b2"]
        assert int(added["version"].rsplit("-", 1)[1]) > int(first["version"].rsplit("-", 1)[1])
        assert "pb" in group_ids(httpx.get(fleet.url + "/api/models").json())
        body = providers_body(fleet)
        assert [row["id"] for row in body["providers"]] == ["sam", "pb"] and body["registry_error"] is None

        # The server's answers agree with the CLI's: both store a favorite of the new provider.
        put = httpx.put(fleet.url + "/api/favorites/pb/b1")
        assert put.status_code == 200, put.text
        fleet.cli("favorites", "add", "pb/b2")  # another process, the same rule
        stars = events.until(lambda c: favorite_ids(c) == ["pb/b1", "pb/b2"])
        assert favorite_ids(stars["catalog"]) == ["pb/b1", "pb/b2"]

        # A label changed: the provider's group says so (its loop restarted with the new settings).
        write(fleet, {"sam": {**sam_only["sam"], "label": "Sam's desktop"}, "pb": both["pb"]})
        relabelled = events.until(lambda c: group(c, "sam")["label"] == "Sam's desktop")
        assert group(relabelled["catalog"], "sam")["status"] == "online"

        # A base_url changed: the provider is asked at its new address.
        write(fleet, {"sam": {**sam_only["sam"], "label": "Sam's desktop"},
                      "pb": {**both["pb"], "base_url": moved.url}})
        events.until(lambda c: [m["id"] for m in group(c, "pb")["models"]] == ["pb/c1"])

        # A provider removed: gone from the catalog, its host no longer asked, its favorites kept as stored.
        write(fleet, {"sam": {**sam_only["sam"], "label": "Sam's desktop"}, "pb": {**both["pb"], "base_url": pb.url}})
        events.until(lambda c: [m["id"] for m in group(c, "pb")["models"]] == ["pb/b1", "pb/b2"])
        write(fleet, {"sam": {**sam_only["sam"], "label": "Sam's desktop"}})
        removed = events.until(lambda c: group_ids(c) == ["sam"])
        assert favorite_ids(removed["catalog"]) == []  # hidden: the provider left
        assert httpx.get(fleet.url + "/api/favorites").json()["favorites"] == ["pb/b1", "pb/b2"]
        assert pb.fake is not None
        time.sleep(1.5)  # a round of pb's loop (refresh_s 1) that had started may still land
        asked = len(pb.fake.paths())
        time.sleep(2.5)
        assert len(pb.fake.paths()) == asked, "the removed provider's host is still asked"
        events.close()
    log = fleet.process.stderr.read()
    assert "Traceback" not in log
    assert f"registry {fleet.registry} applied: added pb" in log
    assert log.count(" applied: ") == 5, log  # one per edit, none for a look that found the same fleet


def test_a_bad_registry_edit_keeps_the_last_good_one_and_says_so(tmp_path: Path, sam: Host, pb: Host) -> None:
    good = {"sam": {"kind": "llama-swap", "base_url": sam.url}}
    with serve_fleet(tmp_path, good, {"sam": sam, "pb": pb}) as fleet:
        events = EventReader(fleet.url)
        assert group(events.next()["catalog"], "sam")["status"] == "online"

        fleet.registry.write_text('{"default_provider": "sam", "providers": {')  # a save half done, a typo
        error = until(lambda: providers_body(fleet)["registry_error"])
        assert str(fleet.registry) in error and "not valid JSON" in error and "\n" not in error
        assert [row["id"] for row in providers_body(fleet)["providers"]] == ["sam"]  # the last good one
        assert group(httpx.get(fleet.url + "/api/models").json(), "sam")["status"] == "online"
        assert httpx.put(fleet.url + "/api/favorites/sam/coder").status_code == 200  # serving as before

        # Valid JSON, wrong shape: a schema error, named with its JSON path.
        write(fleet, {"sam": {"kind": "llama-swap", "base_url": sam.url, "refresh_s": "often"}})
        schema = until(lambda: (e := providers_body(fleet)["registry_error"]) and "refresh_s" in e and e)
        assert str(fleet.registry) in schema and "$.providers.sam.refresh_s" in schema

        # Fixed (and pb added meanwhile): applied, the error cleared.
        write(fleet, {**good, "pb": {"kind": "llama-swap", "base_url": pb.url}})
        until(lambda: providers_body(fleet)["registry_error"] is None)
        events.until(lambda c: "pb" in group_ids(c) and group(c, "pb")["status"] == "online")

        # Deleted: the last good registry (with pb) stays, and the error says the file is missing.
        fleet.registry.unlink()
        gone = until(lambda: providers_body(fleet)["registry_error"])
        assert str(fleet.registry) in gone and "file not found" in gone
        assert [row["id"] for row in providers_body(fleet)["providers"]] == ["sam", "pb"]
        time.sleep(2.5)  # more stat calls on the missing file: still one log line for it
        events.close()
    lines = fleet.process.stderr.read().splitlines()
    assert "Traceback" not in "\n".join(lines)
    said = [line for line in lines if "registry not applied" in line]
    assert len([line for line in said if "not valid JSON" in line]) == 1, said  # once, not once a second
    assert len([line for line in said if "file not found" in line]) == 1, said
    assert all(str(fleet.registry) in line for line in said)
    assert any(f"registry {fleet.registry} is valid again" in line for line in lines)


def test_a_registry_from_the_legacy_env_is_not_watched(tmp_path: Path, sam: Host) -> None:
    from boocoder_bridge.bridge import Bridge

    legacy = Bridge.load(env={"LLAMA_SWAP_URL": sam.url, "HOME": str(tmp_path)}, state_dir=tmp_path / "s")
    given = Bridge.load(legacy.registry, tmp_path / "s", env={"HOME": str(tmp_path)})  # a Registry object
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps({"default_provider": "sam", "providers": {
        "sam": {"kind": "llama-swap", "base_url": sam.url}}}))
    from_file = Bridge.load(path, tmp_path / "s", env={"HOME": str(tmp_path)})
    from_env = Bridge.load(None, tmp_path / "s", env={"HOME": str(tmp_path), "BOOCODER_BRIDGE_REGISTRY": str(path)})
    assert (legacy.registry_file, given.registry_file) == (None, None)
    assert (from_file.registry_file, from_env.registry_file) == (path, path)


# --- the dispatch watch (issue 18, part 3) ------------------------------------------------------------------


@pytest.fixture
def fake_opencode(tmp_path: Path) -> Path:
    """An opencode binary to name in a plan: serve never starts it (the client does)."""
    path = tmp_path / "opencode"
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.mark.parametrize("fault", ["killed", "frozen"])
def test_a_dispatched_host_that_goes_away_is_pushed_offline(tmp_path: Path, fake_opencode: Path,
                                                             fault: str) -> None:
    # No push channel (events off) and a slow discovery loop: only the dispatch watch can notice in time.
    sam = HostProcess("sam", ["coder"])
    idle = Host(name="idle", models_body=llama_swap_body("other"))
    providers = {"sam": {"kind": "llama-swap", "base_url": sam.url, "refresh_s": 120},
                 "idle": {"kind": "llama-swap", "base_url": idle.url, "refresh_s": 120}}
    env = {"BOOCODER_BRIDGE_OPENCODE": str(fake_opencode), "BOOCODER_BRIDGE_OPENCODE_TUI": "off"}
    try:
        with serve_fleet(tmp_path, providers, {"idle": idle}, env=env) as fleet:
            events = EventReader(fleet.url)
            assert group(events.next()["catalog"], "sam")["status"] == "online"
            plan = httpx.post(fleet.url + "/api/dispatch", json={"model": "sam/coder", "mode": "acp"}, timeout=30)
            assert plan.status_code == 200, plan.text
            before = sum(line == "GET /health" for line in sam.lines)
            time.sleep(2.5)  # the watch probes about once a second meanwhile
            probes = sum(line == "GET /health" for line in sam.lines) - before
            assert probes >= 2, sam.lines

            went = sam.kill() if fault == "killed" else sam.freeze()
            offline = events.until(lambda c: group(c, "sam")["status"] == "offline", timeout=30)
            seen = time.monotonic() - went
            print(f"\n{fault} host: offline event {seen:.2f} s after it went away")
            assert seen < (5 if fault == "killed" else 8)  # about 1 s refused, about 3 s frozen (2 silent probes)
            error = group(offline["catalog"], "sam")["error"]
            assert sam.url in error and ("2 probes in a row" in error) == (fault == "frozen"), error
            rows = {r["id"]: r for r in httpx.get(fleet.url + "/api/providers").json()["providers"]}
            assert rows["sam"]["status"] == "offline"  # the same snapshot for every request
            refused = httpx.post(fleet.url + "/api/dispatch", json={"model": "sam/coder", "mode": "acp"},
                                 timeout=30)
            assert refused.status_code == 503 and "sam" in refused.json()["error"]
            # Never dispatched to: never probed (its discovery loop alone asks it, every 120 s).
            assert idle.fake is not None and idle.fake.paths().count("/health") == 0, idle.fake.paths()
            events.close()
    finally:
        sam.close()
    assert "host gone while a dispatch on it may run" in fleet.process.stderr.read()


def test_an_arena_plan_watches_every_contestants_host(tmp_path: Path, fake_opencode: Path) -> None:
    one, two = HostProcess("one", ["m"]), HostProcess("two", ["m"])
    providers = {"one": {"kind": "llama-swap", "base_url": one.url, "refresh_s": 120},
                 "two": {"kind": "llama-swap", "base_url": two.url, "refresh_s": 120}}
    env = {"BOOCODER_BRIDGE_OPENCODE": str(fake_opencode), "BOOCODER_BRIDGE_OPENCODE_TUI": "off"}
    try:
        with serve_fleet(tmp_path, providers, {}, env=env) as fleet:
            events = EventReader(fleet.url)
            events.next()
            plan = httpx.post(fleet.url + "/api/arena", json={"models": ["one/m", "two/m"]}, timeout=30)
            assert plan.status_code == 200, plan.text
            time.sleep(1.5)
            two.kill()
            gone = events.until(lambda c: group(c, "two")["status"] == "offline", timeout=30)["catalog"]
            assert group(gone, "one")["status"] == "online"  # the other contestant's host is still there
            assert sum(line == "GET /health" for line in one.lines) >= 2
            events.close()
    finally:
        one.close()
        two.close()


def test_a_reload_restarts_only_what_changed(tmp_path: Path) -> None:
    """The same registry read again (the 10 s reread, an editor saving unchanged) restarts nothing and publishes
    nothing; a change restarts only the providers it touched."""
    import asyncio

    from boocoder_bridge.bridge import Bridge
    from boocoder_bridge.registry import registry_from_data
    from boocoder_bridge.web.live import LiveCatalog
    from tests.helpers import down, registry_data

    data = registry_data({"a": down(0.2), "b": down(0.2)})
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(data))
    bridge = Bridge.load(path, tmp_path / "state", env={"HOME": str(tmp_path)})

    async def run() -> None:
        catalog = LiveCatalog(bridge)
        await catalog.start(wait_s=1)
        tasks, version, fleet = dict(catalog._provider_tasks), catalog.version, bridge.fleet
        assert not catalog.apply_registry(registry_from_data(json.loads(json.dumps(data))))
        assert (catalog._provider_tasks, catalog.version, bridge.fleet) == (tasks, version, fleet)

        data["providers"]["b"]["label"] = "Bee"
        assert catalog.apply_registry(registry_from_data(data))
        assert catalog._provider_tasks["a"] == tasks["a"] and catalog._provider_tasks["b"] != tasks["b"]
        assert all(task.cancelling() or task.done() for task in tasks["b"])
        assert bridge.fleet is not fleet and bridge.fleet.generation > fleet.generation
        assert catalog.version == version + 1 and catalog.current.providers[1].label == "Bee"
        assert bridge.fleet.current() is catalog.state  # the new fleet serves the published snapshot
        await catalog.stop()

    asyncio.run(run())
