from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boocoder_bridge.errors import ModelIdError
from boocoder_bridge.ids import MAX_ID_LENGTH, ModelRef
from boocoder_bridge.registry import registry_from_data
from tests.helpers import deepseek, down, registry_data

REGISTRY = registry_from_data(registry_data({"sam-desktop": down(), "embedding": down(), "deepseek": deepseek()}))

provider_ids = st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,20}\Z")
model_chars = st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"))
model_names = st.text(model_chars, min_size=1, max_size=80)


@given(provider_ids, model_names)
def test_composite_ids_round_trip(provider: str, model: str) -> None:
    ref = ModelRef(provider, model)
    assert ModelRef.parse(str(ref)) == ref
    assert str(ModelRef.parse(str(ref))) == f"{provider}/{model}"


@given(st.sampled_from(["sam-desktop", "embedding", "deepseek"]), model_names)
def test_registered_provider_ids_round_trip_through_the_registry(provider: str, model: str) -> None:
    ref, legacy = REGISTRY.parse_model_id(f"{provider}/{model}")
    assert (ref, legacy) == (ModelRef(provider, model), False)
    assert REGISTRY.parse_model_id(str(ref)) == (ref, False)


@pytest.mark.parametrize(("text", "provider", "model"), [
    ("sam-desktop/unsloth/Qwen3:Q4_K_M", "sam-desktop", "unsloth/Qwen3:Q4_K_M"),
    ("embedding/gpt-oss-20b:high", "embedding", "gpt-oss-20b:high"),
    ("sam-desktop/gpu-box/qwen3-32b", "sam-desktop", "gpu-box/qwen3-32b"),
])
def test_split_at_first_slash(text: str, provider: str, model: str) -> None:
    assert REGISTRY.parse_model_id(text) == (ModelRef(provider, model), False)


@pytest.mark.parametrize(("text", "provider", "model"), [
    ("qwen3-coder-30b", "sam-desktop", "qwen3-coder-30b"),  # bare: default provider
    ("unsloth/Qwen3:Q4_K_M", "sam-desktop", "unsloth/Qwen3:Q4_K_M"),  # bare with a slash: not a provider
    ("deepseek-chat", "deepseek", "deepseek-chat"),  # claimed in bare_ids
    ("deepseek-chat-v2", "sam-desktop", "deepseek-chat-v2"),  # exact match only, never by name
    ("deepseek-r1-distill-qwen-32b", "sam-desktop", "deepseek-r1-distill-qwen-32b"),  # local stays local
    ("llama-swap/qwen3-coder-30b", "sam-desktop", "qwen3-coder-30b"),  # the host's old namespace
    ("llama-swap/unsloth/Q:1", "sam-desktop", "unsloth/Q:1"),
])
def test_legacy_bare_ids_resolve_without_migration(text: str, provider: str, model: str) -> None:
    assert REGISTRY.parse_model_id(text) == (ModelRef(provider, model), True)


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "empty"),
    ("home/", "no model part"),
    ("sam-desktop/", "no model part"),
    ("/m", "no provider part"),
    ("sam-desktop/qwen 3", "whitespace"),
    ("sam-desktop/qwen\t3", "whitespace"),
    ("sam-desktop/q\x00", "control"),
    ("sam-desktop/q\u200b", "control"),
    ("a/" + "m" * MAX_ID_LENGTH, "limit is 512"),
])
def test_bad_ids_are_rejected_clearly(text: str, fragment: str) -> None:
    with pytest.raises(ModelIdError, match=fragment):
        REGISTRY.parse_model_id(text)


def test_parse_requires_a_composite_id() -> None:
    with pytest.raises(ModelIdError, match="not a composite"):
        ModelRef.parse("qwen3")
    with pytest.raises(ModelIdError, match="provider ID"):
        ModelRef("Bad_Upper", "m")


def test_512_characters_is_the_inclusive_limit() -> None:
    text = "a/" + "m" * (MAX_ID_LENGTH - 2)
    assert len(text) == MAX_ID_LENGTH
    assert str(ModelRef.parse(text)) == text
