"""Fault injection over real loopback HTTP: one bad host never hurts the others, nothing crashes.

Exit code of `models` with a failing host: 0 (the failure is data: the group's status and error).
"""

from __future__ import annotations

import pytest

from tests.fakehost import llama_swap_body
from tests.helpers import llama_swap

BIG = 50 * 1024 * 1024

FAULTS = [
    # (name, FakeHost kwargs, expected status, fragment of the error)
    ("refused", None, "offline", "cannot connect"),
    ("hang", {"fault": "hang"}, "offline", "no complete answer within 1 s"),
    ("http-500", {"fault": "status", "fault_arg": 500}, "error", "HTTP 500"),
    ("http-404", {"fault": "status", "fault_arg": 404}, "error", "HTTP 404"),
    ("http-401", {"fault": "status", "fault_arg": 401}, "error", "HTTP 401"),
    ("invalid-json", {"fault": "raw", "fault_arg": b'{"data": [ {"id": '}, "error", "not JSON"),
    ("html", {"fault": "raw", "fault_arg": b"<html><body>Bad gateway</body></html>"}, "error", "HTML"),
    ("json-list", {"models_body": [{"id": "a"}]}, "error", "not a model list"),
    ("data-not-list", {"models_body": {"data": {"id": "a"}}}, "error", "not a model list"),
    ("entry-without-id", {"models_body": {"data": [{"id": "ok"}, {"name": "no id"}]}}, "error", "entry 1 has no"),
    ("entry-id-not-string", {"models_body": {"data": [{"id": 42}]}}, "error", "entry 0 has no"),
    ("50MB-declared", {"fault": "big", "fault_arg": BIG}, "error", "limit is"),
    ("50MB-unsized", {"fault": "big-unsized", "fault_arg": BIG}, "error", "exceeds"),
    ("trickle", {"fault": "trickle", "fault_arg": 0.2}, "offline", "no complete answer within 1 s"),
    ("redirect-other-origin", {"fault": "redirect", "fault_arg": "http://127.0.0.2:1/v1/models"}, "error",
     "another origin"),
]


@pytest.mark.parametrize(("name", "setup", "status", "fragment"), FAULTS, ids=[f[0] for f in FAULTS])
def test_fault_is_reported_and_others_are_served(hosts, write_registry, run_cli, name, setup, status, fragment):
    good = hosts(name="good", models_body=llama_swap_body("fine-model"))
    bad_url = "http://127.0.0.1:9" if setup is None else hosts(name="bad", **setup).url
    registry = write_registry({"default_provider": "good", "providers": {
        "good": llama_swap(good.url),
        "bad": llama_swap(bad_url, timeout_s=1)}})
    result = run_cli("--registry", str(registry), "models", "--json")
    assert result.code == 0, result.err
    groups = {g["id"]: g for g in result.json()["providers"]}
    assert groups["good"]["status"] == "online" and [m["id"] for m in groups["good"]["models"]] == [
        "good/fine-model"]
    assert groups["bad"]["status"] == status
    assert fragment in groups["bad"]["error"] and "\n" not in groups["bad"]["error"]
    assert groups["bad"]["models"] == []  # a hanging or trickling host is cut by its 1 s total deadline


def test_same_origin_redirect_is_followed(hosts, write_registry, run_cli) -> None:
    mover = hosts(fault="redirect")
    mover.fault_arg = mover.url + "/v1/models-moved"
    mover.extra["/v1/models-moved"] = llama_swap_body("moved")
    registry = write_registry({"default_provider": "m", "providers": {
        "m": llama_swap(mover.url)}})
    groups = run_cli("--registry", str(registry), "models", "--json").json()["providers"]
    assert groups[0]["status"] == "online" and [m["model"] for m in groups[0]["models"]] == ["moved"]


def test_a_failing_host_keeps_its_last_known_models_for_offline_generate(hosts, write_registry, run_cli):
    host = hosts(models_body=llama_swap_body("kept"))
    registry = write_registry({"default_provider": "h", "providers": {
        "h": llama_swap(host.url, timeout_s=0.5)}})
    assert run_cli("--registry", str(registry), "models", "--json").code == 0
    host.fault, host.fault_arg = "raw", b"<html>"
    live = run_cli("--registry", str(registry), "models", "--json", "--refresh").json()
    assert live["providers"][0]["status"] == "error" and live["providers"][0]["models"] == []
    offline = run_cli("--registry", str(registry), "generate", "--offline").json()
    assert list(offline["provider"]["h"]["models"]) == ["kept"]
