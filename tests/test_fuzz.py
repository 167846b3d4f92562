"""Property tests: random registries and random host bodies never crash anything."""

from __future__ import annotations

import json
import string
import unicodedata
import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boocoder_bridge import HostError
from boocoder_bridge.cli import main
from boocoder_bridge.default_plugins.llama_swap import parse_models
from boocoder_bridge.errors import RegistryError
from boocoder_bridge.registry import registry_from_data
from boocoder_bridge.reports import load_json, safe_text
from boocoder_bridge.settings import MAX_NAME_CHARS, MAX_TOKENS

KINDS = ["llama-swap", "openai-compatible"]
provider_ids = st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,10}\Z")
urls = st.builds(lambda host, port: f"http://{host}:{port}", st.sampled_from(["127.0.0.1", "h", "box.lan"]),
                 st.integers(1, 65535))
env_names = st.from_regex(r"\A[A-Z_][A-Z0-9_]{0,10}\Z")
model_settings = st.fixed_dictionaries({}, optional={
    "name": st.text(min_size=1, max_size=10), "context_window": st.integers(1, 10**7),
    "max_output": st.integers(1, 10**6), "upstream_id": st.text(min_size=1, max_size=10)})
providers = st.fixed_dictionaries({"kind": st.sampled_from(KINDS), "base_url": urls}, optional={
    "sidecar_url": urls, "label": st.text(min_size=1, max_size=10), "api_key_env": env_names,
    "enabled_if_env": env_names, "discover": st.booleans(), "timeout_s": st.floats(0.01, 600),
    "models": st.dictionaries(st.text(string.ascii_letters + "/:-", min_size=1, max_size=12), model_settings,
                              max_size=3)})
valid_registries = st.dictionaries(provider_ids, providers, min_size=1, max_size=4).flatmap(
    lambda ps: st.fixed_dictionaries({"default_provider": st.sampled_from(sorted(ps)), "providers": st.just(ps)}))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(valid_registries)
def test_valid_registries_load(data) -> None:
    registry = registry_from_data(data, "<fuzz>", KINDS)
    assert set(registry.providers) == set(data["providers"])
    for provider in registry.providers.values():
        assert provider.route_base.endswith("/v1")


def mutate(data: dict, where: int, junk: object) -> dict:
    """Break one place of a valid registry with a junk value."""
    pid = sorted(data["providers"])[0]
    spots = [("default_provider",), ("providers", pid, "kind"), ("providers", pid, "base_url"),
             ("providers", pid, "timeout_s"), ("providers", pid, "sidcar_url"), ("providers", pid, "api_key"),
             ("providers", pid, "models"), ("providers", pid, "bare_ids"), ("providers",)]
    path = spots[where % len(spots)]
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = junk
    return data


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(valid_registries, st.integers(0, 100), json_values)
def test_invalid_registries_exit_2_naming_the_path(tmp_path, capsys, data, where, junk) -> None:
    broken = mutate(json.loads(json.dumps(data)), where, junk)
    try:
        registry_from_data(broken, "<fuzz>", KINDS)
    except RegistryError as exc:
        assert exc.json_path.startswith("$")
        valid = False
    else:
        valid = True  # the junk happened to be valid there: the CLI must accept it too
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(broken))
    code = main(["--registry", str(path), "validate"])
    out, err = capsys.readouterr()
    if valid:
        assert (code, err) == (0, "") and out.startswith(f"ok: {path}: ")
    else:
        assert code == 2
        assert err.startswith(f"boocoder-bridge: error: {path}: $") and "Traceback" not in err


@settings(max_examples=300)
@given(json_values)
def test_random_bodies_never_crash_discovery(body) -> None:
    try:
        models, skipped = parse_models(body)
    except HostError as exc:
        assert exc.status == "error" and "\n" not in exc.reason
    else:
        assert [m.id for m in models] == sorted({m.id for m in models}) and skipped >= 0


@settings(max_examples=200)
@given(st.lists(st.fixed_dictionaries({"id": st.text(min_size=1, max_size=20)}, optional={
    "context_length": json_values, "meta": st.fixed_dictionaries({}, optional={
        "n_ctx": json_values, "llamaswap": st.dictionaries(st.sampled_from(
            ["type", "modelID", "peerID", "context_length", "context_window", "max_output_tokens"]),
            json_values, max_size=4)}), "status": json_values, "name": json_values}), max_size=6))
def test_random_entries_give_only_positive_int_windows(entries) -> None:
    models, _ = parse_models({"data": entries})
    for model in models:
        assert model.context_window is None or (type(model.context_window) is int and model.context_window > 0)
        assert model.max_output is None or (type(model.max_output) is int and model.max_output > 0)


# --- issue 11: host text, numbers, JSON and encodings ----------------------------------------------------------

UNSAFE = {"Cc", "Cf", "Cs", "Zl", "Zp"}
hostile_text = st.text(st.characters(codec=None, categories=None), max_size=40) | st.text(
    st.sampled_from("\x1b\x07\x00\n\r\t\x9b\u202e\u2066\u2069\u200f\u2028\u2029\ufeff\ud800a[;]0 "), max_size=40)


def shown_safely(text: str, limit: int) -> bool:
    return len(text) <= limit and not any(unicodedata.category(ch) in UNSAFE for ch in text)


@settings(max_examples=300)
@given(hostile_text, st.integers(1, 300))
def test_safe_text_escapes_every_unsafe_character_and_is_idempotent(text, limit) -> None:
    shown = safe_text(text, limit)
    assert shown_safely(shown, limit) and safe_text(shown, limit) == shown
    if shown_safely(text, limit):
        assert shown == text  # safe text is never touched


@settings(max_examples=200)
@given(st.lists(st.fixed_dictionaries({"id": st.text(min_size=1, max_size=12)}, optional={
    "name": hostile_text, "meta": st.fixed_dictionaries({}, optional={"llamaswap": st.fixed_dictionaries(
        {}, optional={"type": hostile_text, "modelID": hostile_text,
                      "context_length": st.integers(-10**30, 10**100)})}),
    "context_length": st.integers(-10**30, 10**100)}), max_size=6), st.integers(0, 10**90))
def test_any_host_text_and_number_lists_and_renders_safely(entries, hook_window) -> None:
    from boocoder_bridge.catalog import Catalog, CatalogGroup, CatalogModel
    from boocoder_bridge.default_plugins.llama_swap import parse_models

    models, _ = parse_models({"data": entries})
    for model in models:
        assert shown_safely(model.name or "", MAX_NAME_CHARS) and shown_safely(model.type, 64)
        assert model.context_window is None or 0 < model.context_window <= MAX_TOKENS
    group = CatalogGroup(id="p", label="P", kind="llama-swap", status="online", error=None, models=[
        CatalogModel(id=f"p/{m.id}", provider="p", model=m.id, name=m.name or m.id, favorite=False,
                     context_window=m.context_window or hook_window or None) for m in models])
    text = Catalog(favorites=[], providers=[group]).render_text()
    assert len(text.splitlines()) == 4 + max(len(models), 1)
    assert not any(unicodedata.category(ch) in UNSAFE for ch in text.replace("\n", ""))


@settings(max_examples=300)
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()),
       st.integers(0, 5000), st.integers(0, 5000))
def test_any_body_bytes_give_json_or_one_line_host_error(body, depth, digits) -> None:
    for raw in (body, b"[" * depth * 40 + body, b'{"n": ' + b"7" * digits + b"}"):
        try:
            load_json(raw, "/v1/models")
        except HostError as exc:
            assert exc.status == "error" and "\n" not in exc.reason


@settings(max_examples=200)
@given(st.sampled_from(["gzip", "x-gzip", "deflate"]), st.binary(max_size=300), st.booleans(), st.integers(1, 64))
def test_any_encoded_bytes_inflate_in_bounded_pieces_or_fail_in_one_line(encoding, data, packed, cut) -> None:
    from boocoder_bridge.discovery import _PIECE, _Inflater, _through

    if packed:  # a real stream, sometimes cut short
        wbits = 31 if encoding != "deflate" else 15
        packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
        data = (packer.compress(data * 2000) + packer.flush())[: None if cut == 64 else -cut]
    layer = _Inflater(encoding, "/v1/models")
    try:
        pieces = [p for i in range(0, len(data), 7) for p in _through([layer], data[i:i + 7])]
        pieces += list(_through([layer], b"", final=True))
    except HostError as exc:
        assert "\n" not in exc.reason and f"not valid {encoding}" in exc.reason
    else:
        assert all(len(p) <= _PIECE for p in pieces)


@settings(max_examples=200)
@given(st.text(max_size=60) | json_values.map(json.dumps), st.integers(0, 3000), st.integers(0, 5000))
def test_any_event_message_gives_states_or_none(data, depth, digits) -> None:
    from boocoder_bridge.default_plugins.llama_swap import parse_model_status

    for message in (data, "[" * depth * 40 + data, json.dumps({"type": "modelStatus", "data": json.dumps(
            [{"id": "m", "state": "ready", "context_length": 0}]).replace("0}", "9" * digits + "}")})):
        states = parse_model_status(message)
        assert states is None or all(s.context_window is None or 0 < s.context_window <= MAX_TOKENS for s in states)
