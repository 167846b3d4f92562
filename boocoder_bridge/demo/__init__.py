"""A real model server to try the bridge on, with no model download: the tests use it, and so does
``boocoder-bridge demo``. Needs the ``[demo]`` extra (xllamacpp, gguf).

- :mod:`.model`: writes a tiny random-weight llama model (GGUF, about 470 KB);
- :mod:`.llama_server`: serves it with llama.cpp's own HTTP server (xllamacpp) on a loopback port;
- :mod:`.proxy`: a llama-swap-shaped (v250) proxy in front of one or more such servers;
- :mod:`.events`: llama-swap's ``/api/events`` Server-Sent Events, in the shapes of its source;
- :mod:`.fleet`: ``boocoder-bridge demo``: two real servers, one behind the proxy, and a registry for them;
- :mod:`.loopback`: the threaded loopback HTTP server the proxy (and the tests' fake hosts) are built on.
"""
