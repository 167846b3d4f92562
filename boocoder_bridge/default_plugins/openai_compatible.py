"""The ``openai-compatible`` kind: any server with an OpenAI ``GET /v1/models`` (DeepSeek, vLLM, llama.cpp, ...).

The base :class:`ProviderKind` already reads ``/v1/models``, so this kind is just a name for it.
"""

from __future__ import annotations

from collections.abc import Callable

from boocoder_bridge import ProviderKind, hookimpl

OPENAI_COMPATIBLE = ProviderKind(name="openai-compatible")


@hookimpl
def register_provider_kinds(register: Callable[[ProviderKind], None]) -> None:
    register(OPENAI_COMPATIBLE)
