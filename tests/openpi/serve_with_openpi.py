"""Serve VLAScope's reference policy with openpi's own ``WebsocketPolicyServer``, unchanged,
so the ``remote`` plugin's plain-openpi path is tested against the real thing. Runs inside
the openpi virtualenv (scripts/openpi_env.sh) with the checkout first on PYTHONPATH:

    PYTHONPATH=. $(bash scripts/openpi_env.sh) tests/openpi/serve_with_openpi.py PORT

openpi's server cannot pick a free port itself (port 0), so the caller picks one. Prints
``listening on ws://127.0.0.1:PORT`` once ``/healthz`` answers. Every request runs under
the policy's common noise: an openpi request carries no way to ask for it, and the tests
compare these actions with in-process ones computed under the same pin.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
import urllib.request
from typing import Any

import numpy as np
from openpi_client import base_policy
from openpi_server.websocket_policy_server import WebsocketPolicyServer

from vlascope.core.policy import Observation
from vlascope.policies.reference.policy import ReferencePolicy


class ReferenceOpenpiPolicy(base_policy.BasePolicy):
    """openpi's policy contract around ours: ``observation/<camera>`` images (HWC uint8),
    ``observation/state``, ``prompt`` in; ``{"actions": (horizon, action_dim)}`` out."""

    def __init__(self, policy: ReferencePolicy):
        self.policy = policy

    def infer(self, obs: dict) -> dict:
        images = {c: np.asarray(obs[f"observation/{c}"], np.uint8) for c in self.policy.cameras}
        state = np.asarray(obs.get("observation/state", np.zeros(0)), np.float32)
        observation = Observation(images, state, str(obs.get("prompt", "")))
        with self.policy.common_noise():
            actions = self.policy.batch_infer([observation])
        return {"actions": np.asarray(actions[0], np.float32)}

    def reset(self) -> None:
        self.policy.reset()


def announce_when_up(port: int, timeout: float = 120.0) -> None:
    """Print the address once the server answers its health check (openpi's server has no
    'listening' callback)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    print(f"openpi server: listening on ws://127.0.0.1:{port}", flush=True)
                    return
        except OSError:
            time.sleep(0.05)
    print("openpi server: did not come up", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port", type=int, help="TCP port on 127.0.0.1 (openpi cannot take 0)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    policy = ReferencePolicy(device=args.device)
    metadata: dict[str, Any] = {"policy": "vlascope reference, served by openpi_server",
                                "cameras": list(policy.cameras)}
    server = WebsocketPolicyServer(ReferenceOpenpiPolicy(policy), host="127.0.0.1",
                                   port=args.port, metadata=metadata)
    threading.Thread(target=announce_when_up, args=(args.port,), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
