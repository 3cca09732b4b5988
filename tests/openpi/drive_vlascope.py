"""Drive ``vlascope serve`` with openpi's own client, unchanged (``WebsocketClientPolicy``),
so our server's plain-openpi path is tested against the real thing. Runs inside the openpi
virtualenv (scripts/openpi_env.sh) with the checkout first on PYTHONPATH:

    PYTHONPATH=. $(bash scripts/openpi_env.sh) tests/openpi/drive_vlascope.py URL OUT.npz

Cameras, image size and state size come from the metadata the server sends on connect
(``metadata["vlascope"]["policy"]``); the observations come from ``observations()``, which
the test process calls too, so both sides see the same seeded inputs. OUT.npz holds the
actions (one chunk per request, in order), the inputs and the metadata (as JSON).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

PROMPTS = ("stack the red block on the blue block", "push the green block to the left")


def observations(cameras: list[str], image_size: tuple[int, int], state_dim: int, n: int,
                 seed: int) -> list[dict[str, Any]]:
    """``n`` openpi observation dicts, the same for the same arguments in any process."""
    rng = np.random.default_rng(seed)
    h, w = image_size
    out = []
    for i in range(n):
        obs: dict[str, Any] = {f"observation/{c}": rng.integers(0, 256, (h, w, 3), np.uint8)
                               for c in cameras}
        obs["observation/state"] = rng.standard_normal(state_dim).astype(np.float32)
        obs["prompt"] = PROMPTS[i % len(PROMPTS)]
        out.append(obs)
    return out


def main(argv: list[str] | None = None) -> None:
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url", help="ws://HOST:PORT of vlascope serve")
    ap.add_argument("out", help=".npz file to write")
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    client = WebsocketClientPolicy(host=args.url)
    meta = client.get_server_metadata()
    d = meta["vlascope"]["policy"]
    obs = observations(list(d["cameras"]), tuple(d["image_size"]), int(d["state_dim"]),
                       args.n, args.seed)
    actions = [np.asarray(client.infer(o)["actions"], np.float32) for o in obs]
    images = {k: np.stack([o[k] for o in obs]) for k in obs[0] if k.startswith("observation/")}
    np.savez(args.out, actions=np.stack(actions), metadata=np.array(json.dumps(meta)),
             **{k.replace("/", "__"): v for k, v in images.items()})
    print(f"drive_vlascope: {len(actions)} chunks of shape {actions[0].shape} from {args.url}")


if __name__ == "__main__":
    main()
