"""``vlascope serve``: host a policy plugin for clients in other processes or machines.

``python -m vlascope.cli_serve ARGS`` is the same command without the rest of the CLI,
whose parser imports what a policy's own environment may lack (scipy, for the video
options): ``vlascope.remote.spawn`` starts servers that way."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import threading
from pathlib import Path

from .core.errors import VLAScopeError


def cmd_serve(args: argparse.Namespace) -> int:
    from .cli import _policy_options, _registry

    unix = None
    if args.unix is not None:  # refused before the slow imports and the policy's loading
        unix = Path(args.unix)
        if unix.exists() or unix.is_symlink():
            raise VLAScopeError(f"{unix} already exists; not replacing it (pick another "
                                "socket path)")
    from .remote.server import PolicyServer, is_loopback, serve

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="vlascope serve: %(message)s")
    token = args.token or os.environ.get("VLASCOPE_TOKEN") or None
    if args.unix is None and not is_loopback(args.host) and not token:
        token = secrets.token_urlsafe(24)
        print(f"vlascope serve: listening beyond this machine needs a token; clients pass "
              f"--policy-option token={token}", flush=True)
    cams = {}
    for pair in args.openpi_camera or []:
        key, sep, cam = pair.partition("=")
        if not sep or not key or not cam:
            raise VLAScopeError(f"--openpi-camera expects KEY=CAMERA, got '{pair}'")
        cams[key] = cam
    policy = _registry().create_policy(args.policy, **_policy_options(args))
    server = PolicyServer(policy, args.policy, max_message=int(args.max_message_mb * (1 << 20)),
                          max_batch=args.max_batch, openpi_cameras=cams)
    try:
        ws = serve(server, host=args.host, port=args.port,
                   unix=None if unix is None else str(unix), token=token)
    except OSError as e:
        raise VLAScopeError(f"cannot listen on {unix or f'{args.host}:{args.port}'}: "
                            f"{e.strerror or e}") from None
    if unix is not None:
        url = f"unix://{unix}"
    else:
        host, port = ws.socket.getsockname()[:2]
        url = f"ws://{host if ':' not in host else f'[{host}]'}:{port}"
    print(f"vlascope serve: {args.policy} ({getattr(policy, 'policy_id', args.policy)}) on "
          f"{url}", flush=True)

    stop = threading.Event()  # SIGTERM as Ctrl-C: close cleanly, remove our socket
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    listening = threading.Thread(target=ws.serve_forever, name="connections", daemon=True)
    listening.start()
    try:  # the policy runs in this thread, which built it (PolicyServer.run_policy_thread)
        server.run_policy_thread(stop)
    except KeyboardInterrupt:
        pass
    finally:
        ws.shutdown()
        listening.join(timeout=10)
        if unix is not None and unix.is_socket():
            unix.unlink()  # the socket file we made
    print("vlascope serve: stopped", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    _add_arguments(sub.add_parser("serve", help="host a policy for clients in other processes "
                                  "or machines (openpi's websocket protocol, extended)"))


def main(argv: list[str] | None = None) -> int:
    """``vlascope serve`` on its own (see the module's docstring)."""
    parser = argparse.ArgumentParser(prog="vlascope serve")
    _add_arguments(parser)
    args = parser.parse_args(argv)
    from .cli import run_command

    return run_command(args)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    from .cli import DEFAULT_POLICY, _add_policy_options

    p.add_argument("--policy", default=DEFAULT_POLICY,
                   help=f"policy plugin to serve (default: {DEFAULT_POLICY})")
    p.add_argument("--device", default=None,
                   help="auto (CUDA when present, else CPU), cpu or cuda[:N]")
    p.add_argument("--weights", default=None, help="checkpoint folder for --policy")
    _add_policy_options(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: loopback only; any other needs a "
                   "token)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (0: pick a free one)")
    p.add_argument("--unix", default=None, metavar="PATH",
                   help="listen on a Unix socket at PATH instead of TCP")
    p.add_argument("--token", default=None, help="clients must send this token (default: "
                   "$VLASCOPE_TOKEN; made up and printed when listening beyond loopback)")
    p.add_argument("--max-message-mb", type=float, default=256.0,
                   help="largest request accepted, in MB (default 256)")
    p.add_argument("--max-batch", type=int, default=4096,
                   help="most observations in one request (default 4096)")
    p.add_argument("--openpi-camera", action="append", metavar="KEY=CAMERA",
                   help="map an openpi client's image key to a camera of the policy, e.g. "
                   "observation/image=front (repeatable)")
    p.add_argument("--verbose", action="store_true", help="log connections and refusals")
    p.set_defaults(func=cmd_serve)


if __name__ == "__main__":
    sys.exit(main())
