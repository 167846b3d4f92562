"""The built-in plugins. Each module here is registered like a third-party plugin and imports only the public
API (``from boocoder_bridge import ...``), so whatever a built-in kind does, a plugin's kind can do too.
"""

DEFAULT_PLUGINS: tuple[str, ...] = (
    "boocoder_bridge.default_plugins.openai_compatible",
    "boocoder_bridge.default_plugins.llama_swap",
    "boocoder_bridge.default_plugins.llama_cpp",
    "boocoder_bridge.default_plugins.model_choices",
)
