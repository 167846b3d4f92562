"""Hostile and broken registry files: each is one line on stderr and exit 2, in bounded time and memory."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from boocoder_bridge import jsonschemas
from tests.conftest import run_process

PASSWORD = "pa55-w0rd-9f3e"


def fleet(**provider: object) -> dict:
    return {"default_provider": "home", "providers": {"home": {"kind": "llama-swap", "base_url": "http://h:1",
                                                               **provider}}}


def error_lines(result) -> list[str]:
    """Exit 2 and only one-line errors, no traceback (``validate`` ends with a count line: ``FILE: 2 problems``)."""
    assert result.code == 2, (result.code, result.err)
    lines = result.err.splitlines()
    if lines and re.search(r": \d+ problems?$", lines[-1]) and not lines[-1].startswith("boocoder-bridge"):
        lines = lines[:-1]
    assert lines and all(line.startswith("boocoder-bridge: error: ") for line in lines), result.err
    assert "Traceback" not in result.err and result.out == ""
    return lines


def one_error_line(result) -> str:
    lines = error_lines(result)
    assert len(lines) == 1, result.err
    return lines[0]


@pytest.mark.parametrize(("key", "url"), [("base_url", f"http://admin:{PASSWORD}@h:1"),
                                          ("sidecar_url", f"https://{PASSWORD}@h"),
                                          ("base_url", f"http://admin:{PASSWORD}@[::1]:8080/x"),
                                          ("sidecar_url", f"ftp://u:{PASSWORD}@h")])
def test_credentials_in_a_url_are_refused_and_never_shown(write_registry, run_cli, key: str, url: str) -> None:
    registry = write_registry(fleet(**{key: url}))
    for command in (["validate"], ["resolve", "home/m"], ["providers", "--json"], ["generate", "--offline"]):
        line = one_error_line(run_cli("--registry", str(registry), *command))
        assert f"{registry}: $.providers.home.{key}:" in line and "api_key_env" in line
        assert PASSWORD not in line


def test_credentials_in_the_legacy_url_are_refused(run_cli, monkeypatch) -> None:
    monkeypatch.setenv("LLAMA_SWAP_URL", f"http://admin:{PASSWORD}@10.0.0.5:8080/v1")
    line = one_error_line(run_cli("providers", "--json"))
    assert "LLAMA_SWAP_URL" in line and "api_key_env" in line and PASSWORD not in line


@pytest.mark.parametrize(("mutate", "path"), [
    (lambda d: d["providers"].update({"p\n": d["providers"].pop("home")}), '$.providers["p\\n"]'),
    (lambda d: d.update(default_provider="home\n"), "$.default_provider"),
    (lambda d: d["providers"]["home"].update(base_url="http://h:1\n"), "$.providers.home.base_url"),
    (lambda d: d["providers"]["home"].update(sidecar_url="http://h:2/x\n"), "$.providers.home.sidecar_url"),
    (lambda d: d["providers"]["home"].update(kind="llama-swap\n"), "$.providers.home.kind"),
    (lambda d: d["providers"]["home"].update(api_key_env="KEY\n"), "$.providers.home.api_key_env"),
    (lambda d: d["providers"]["home"].update(enabled_if_env="ON\n"), "$.providers.home.enabled_if_env"),
])
def test_a_trailing_newline_is_not_the_end_of_a_pattern(write_registry, run_cli, mutate, path: str) -> None:
    """Python's ``$`` also matches before a final newline; these passed `validate`, then crashed `models`."""
    data = fleet()
    mutate(data)
    registry = write_registry(data)
    for command in (["validate"], ["models", "--json"]):
        lines = error_lines(run_cli("--registry", str(registry), *command))
        assert f"{registry}: {path}:" in lines[0]


def schema_patterns() -> list[str]:
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                found.append(node["pattern"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted(jsonschemas.schema_path("providers.schema.json").parent.glob("*.schema.json")):
        walk(json.loads(path.read_text()))
    return sorted(set(found))


PATTERNS = schema_patterns()
STRICT_END = "$(?!\\n)"


def matches(pattern: str, text: str) -> bool:
    """What the registry check (jsonschema, Python's re) says."""
    return Draft202012Validator({"type": "string", "pattern": pattern}).is_valid(text)


def test_every_schema_pattern_is_anchored_at_both_ends() -> None:
    assert len(PATTERNS) >= 4
    for pattern in PATTERNS:
        assert pattern.startswith("^") and pattern.endswith(STRICT_END), pattern


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_no_pattern_accepts_a_newline_anywhere(data) -> None:
    """Strings that match each pattern's body are valid; with a newline or CR around them they are not."""
    pattern = data.draw(st.sampled_from(PATTERNS))
    body = data.draw(st.from_regex(pattern.removesuffix(STRICT_END) + r"\Z"))
    assert matches(pattern, body)
    for junk in ("\n", "\r\n", "\r", "\u2028"):
        assert not matches(pattern, body + junk), (pattern, body + junk)
        assert not matches(pattern, junk + body), (pattern, junk + body)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node for ECMA-262 regexes")
def test_patterns_mean_the_same_in_ecma_262() -> None:
    """JSON Schema patterns are ECMA-262 regexes: opencode-style validators (JavaScript) must agree."""
    samples = ["home", "p\n", "\np", "a" * 63, "a" * 64, "http://h:1", "http://h:1\n", "https://h/x/v1",
               "https://h/x/v1\n", "http://u:p@h",
               "http://h\r/v1", "http://h/v1\u2028", "KEY", "KEY\n", "_K1", "1K", "llama-swap", "llama-swap\n"]
    cases = [(p, s) for p in PATTERNS for s in samples]
    script = ("const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
              "process.stdout.write(JSON.stringify(cases.map(([p, s]) => new RegExp(p, 'u').test(s))));")
    node = subprocess.run(["node", "-e", script], input=json.dumps(cases), capture_output=True, text=True,
                          timeout=60, check=True)
    assert json.loads(node.stdout) == [matches(p, s) for p, s in cases]


@pytest.mark.parametrize(("text", "path"), [
    ('{"default_provider": "home", "providers": {"home": {"kind": "llama-swap", "base_url": "http://h:1", '
     '"base_url": "http://h:2"}}}', "$.providers.home.base_url"),
    ('{"default_provider": "home", "default_provider": "x", "providers": {"home": {"kind": "llama-swap", '
     '"base_url": "http://h:1"}}}', "$.default_provider"),
    ('{"default_provider": "home", "providers": {"home": {"kind": "llama-swap", "base_url": "http://h:1"}, '
     '"home": {"kind": "openai-compatible", "base_url": "http://h:2"}}}', "$.providers.home"),
])
def test_duplicate_keys_are_reported_with_their_path(tmp_path, run_cli, text: str, path: str) -> None:
    registry = tmp_path / "fleet.json"
    registry.write_text(text)
    line = one_error_line(run_cli("--registry", str(registry), "validate"))
    assert f"{registry}: {path}: duplicate key" in line


@pytest.mark.parametrize("body", [
    '{"default_provider": "home", "providers": {"home": {"kind": "llama-swap", "base_url": "http://h:1", '
    '"timeout_s": NaN}}}',
    '{"default_provider": "home", "providers": {"home": {"kind": "llama-swap", "base_url": "http://h:1", '
    '"models": {"m": {"context_window": ' + "9" * 5000 + '}}}}}',
    '{"default_provider": "home", "providers": {"home": {"kind": "llama-swap", "base_url": "http://h:1", '
    '"models": {"m": {"name": ' + "[" * 100_000 + "]" * 100_000 + '}}}}}',
    '{"default_provider": "home", "providers": {"home": {"kind": "llama-swap", "base_url": "http://h:1", '
    '"models": {"m": {"name": ' + "[" * 900 + "]" * 900 + '}}}}}',
    '{"default_provider": "home", "providers": {"home": {"kind": "llama-swap", "base_url": "http://h:1"}}}'
    + " " * (2 << 20),
], ids=["nan", "5000-digit-int", "nested-100000", "nested-900", "2MiB"])
def test_hostile_registry_text_is_one_line(tmp_path, body: str) -> None:
    registry = tmp_path / "fleet.json"
    registry.write_text(body)
    line = one_error_line(run_process("--registry", str(registry), "validate", timeout=120))
    assert str(registry) in line


def test_a_fifo_registry_does_not_hang(tmp_path) -> None:
    fifo = tmp_path / "fleet.json"
    os.mkfifo(fifo)
    line = one_error_line(run_process("--registry", str(fifo), "validate", timeout=120))
    assert f"{fifo}: $: not a regular file" in line


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_registry_is_refused_without_reading_it(device: str) -> None:
    if not Path(device).exists():
        pytest.skip(f"{device} does not exist here")
    line = one_error_line(run_process("--registry", device, "validate", timeout=120))
    assert f"{device}: $: not a regular file" in line


def test_a_directory_registry_is_one_line(tmp_path) -> None:
    line = one_error_line(run_process("--registry", str(tmp_path), "validate", timeout=120))
    assert f"{tmp_path}: $:" in line
