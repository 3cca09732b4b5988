"""Policies out of process: ``vlascope serve`` hosts any policy plugin behind a websocket
(a superset of openpi's protocol), and the ``remote`` policy plugin drives one wherever it
runs. Everything that crosses is data: msgpack with numpy arrays, never pickle."""
