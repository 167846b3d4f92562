"""The web server ``serve`` runs: the app and its one route table (``app``), who may talk to it (``guard``), the
HTTP API's bodies (``api``), the live catalog and its event stream (``live``), and the picker page (``static/``)."""
