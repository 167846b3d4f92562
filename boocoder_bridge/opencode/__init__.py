"""Everything opencode: the config it reads (``config``), its TUI favorites (``tui``), the plugin file in the
user's own opencode (``plugin``), and starting and stopping opencode processes (``runner``)."""
