"""opencode config: one ``provider`` entry per enabled provider, so ``opencode run -m P/M`` reaches the right
host with the right upstream model name. Output is deterministic (sorted) and never holds a secret: keys are
written as ``{env:NAME}`` and opencode reads the variable itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic_core import to_json

from .files import atomic_write
from .registry import Provider
from .routing import ModelFacts

SCHEMA_URL = "https://opencode.ai/config.json"
EntryHook = Callable[[Provider, dict[str, Any]], dict[str, Any]]


def provider_entry(provider: Provider, npm: str, models: Iterable[tuple[str, ModelFacts]]) -> dict[str, Any]:
    """The opencode entry for one provider. ``limit`` only where both context and output are known."""
    options: dict[str, Any] = {"baseURL": provider.route_base}
    if provider.api_key_env:
        options["apiKey"] = "{env:" + provider.api_key_env + "}"
    entries: dict[str, Any] = {}
    for key, facts in sorted(models, key=lambda item: item[0]):
        model: dict[str, Any] = {"name": facts.name}
        if facts.upstream_model != key:
            model["id"] = facts.upstream_model
        if facts.context_window is not None and facts.max_output is not None:
            model["limit"] = {"context": facts.context_window, "output": facts.max_output}
        entries[key] = model
    return {"npm": npm, "name": provider.display_name, "options": options, "models": entries}


def build_config(entries: Iterable[tuple[Provider, dict[str, Any]]], adjust: EntryHook | None = None) -> dict[str, Any]:
    providers = {}
    for provider, entry in sorted(entries, key=lambda item: item[0].id):
        providers[provider.id] = adjust(provider, entry) if adjust else entry
    return {"$schema": SCHEMA_URL, "provider": providers}


def render(config: dict[str, Any]) -> str:
    """The config as indented JSON: what ``json.dumps(indent=2, ensure_ascii=False)`` writes, byte for byte,
    from pydantic's encoder (Python's is about 10x slower on a 10,000-model fleet)."""
    return to_json(config, indent=2).decode() + "\n"


def write_config(path: Path, config: dict[str, Any]) -> str:
    """Write atomically (``files.atomic_write``); returns the text written. An unchanged file is left alone."""
    text = render(config)
    atomic_write(path, text, skip_if_same=True)
    return text
