"""A third-party plugin: an ``ollama`` provider kind, and longer opencode timeouts for every provider."""

from __future__ import annotations

from boocoder_bridge import HostError, HostModel, ProviderKind, Refused, hookimpl


class OllamaKind(ProviderKind):
    async def list_models(self, client):
        body = await client.get_json("/api/tags")
        if not isinstance(body, dict) or not isinstance(body.get("models"), list):
            raise HostError("error", "/api/tags answer is not an Ollama model list")
        names = sorted(m["name"] for m in body["models"] if isinstance(m, dict) and isinstance(m.get("name"), str))
        return [HostModel(id=name) for name in names], 0


@hookimpl
def register_provider_kinds(register):
    register(OllamaKind(name="ollama", local=True))


@hookimpl
def opencode_provider_entry(provider, entry):
    return {**entry, "options": {**entry["options"], "timeout": 600000}}


@hookimpl
def context_window(provider, model):
    return 2048 if provider.kind == "ollama" else None


@hookimpl
def arena_match(match):
    if any("forbidden" in c.route.model for c in match.contestants):
        raise Refused("forbidden models may not compete")
    match.notes["checked_by"] = "testplugin"


@hookimpl
def before_dispatch(route, argv, env):
    env["TESTPLUGIN_SEEN"] = route.id
