"""The ``remote`` plugin pointed at what is not a policy server, or at one that stops
answering, and ``vlascope serve``'s token and Unix socket: one clear line each, never a
traceback or a hang. Real servers: ``vlascope serve`` children, an HTTP server, raw TCP
servers and a websocket server that never answers."""

import contextlib
import http.server
import socket
import threading

import numpy as np
import pytest
from cli_process import run_cli_fails
from served import served
from websockets.sync.server import serve as ws_serve

from vlascope.cli import main
from vlascope.core.errors import PolicyConnectionLost, VLAScopeError
from vlascope.core.policy import Observation
from vlascope.remote.client import RemotePolicyError, make_remote
from vlascope.remote.wire import pack


def _obs() -> Observation:
    return Observation({c: np.zeros((96, 96, 3), np.uint8) for c in ("front", "wrist")},
                       np.zeros(4, np.float32), "pick up the red block")


@contextlib.contextmanager
def _listening(answer: bytes | None, read_first: bool = True):
    """A TCP server that accepts, reads the request (``read_first``), then says ``answer``
    and hangs up (None: says nothing and holds the connection)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held = []

    def run():
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                held.append(conn)
                if answer is not None:
                    if read_first:
                        conn.recv(1 << 16)
                    conn.sendall(answer)
                    conn.close()

    threading.Thread(target=run, daemon=True).start()
    try:
        yield f"ws://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        for conn in held:
            conn.close()


@contextlib.contextmanager
def _http_server(version: str):
    class Plain(http.server.BaseHTTPRequestHandler):
        protocol_version = version

        def do_GET(self):  # noqa: N802 - http.server's name
            body = b"<html>a web page</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Plain)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"ws://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _one_line(error: BaseException) -> str:
    text = str(error)
    assert isinstance(error, VLAScopeError) and "\n" not in text, text
    return text


@pytest.mark.parametrize(("version", "says"), [
    ("HTTP/1.1", "is not a policy server (it answered HTTP 200 to a websocket request)"),
    ("HTTP/1.0", "does not speak the websocket protocol (unsupported protocol; expected "
                 "HTTP/1.1: HTTP/1.0 200 OK)")])
def test_http_server(version, says):
    with _http_server(version) as url, pytest.raises(RemotePolicyError) as err:
        make_remote(url, connect_timeout=5)
    assert f"{url} {says}" in _one_line(err.value)


def test_tcp_server_that_says_nothing():
    with _listening(None) as url, pytest.raises(RemotePolicyError) as err:
        make_remote(url, connect_timeout=1)
    assert f"{url} did not answer within 1 s" in _one_line(err.value)


def test_tcp_server_that_says_garbage():
    with _listening(b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff garbage\r\n\r\n") as url, \
            pytest.raises(RemotePolicyError) as err:
        make_remote(url, connect_timeout=5)
    assert f"{url} does not speak the websocket protocol (invalid HTTP status line: " \
        "SSH-2.0" in _one_line(err.value)


def test_tcp_server_that_hangs_up_at_once():
    """Before or after the handshake request went out, whichever the race gives."""
    with _listening(b"", read_first=False) as url, pytest.raises(RemotePolicyError) as err:
        make_remote(url, connect_timeout=5)
    assert url in _one_line(err.value)


def test_websocket_server_of_another_protocol():
    def handler(conn):
        conn.send("hello, this is a chat server")
        with contextlib.suppress(Exception):
            conn.recv()

    with ws_serve(handler, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
        with pytest.raises(RemotePolicyError) as err:
            make_remote(url, connect_timeout=5)
        server.shutdown()
    assert "speaks another protocol" in _one_line(err.value)


def test_server_that_never_answers():
    """Accepts, sends openpi metadata, then never answers a request: the call times out
    with the line saying how to wait longer, and the next call connects afresh."""
    release = threading.Event()

    def handler(conn):
        conn.send(pack({}))
        with contextlib.suppress(Exception):
            conn.recv()
        release.wait(60)

    with ws_serve(handler, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
        policy = make_remote(url, timeout=1, connect_timeout=5)
        with pytest.raises(PolicyConnectionLost) as err:
            policy.batch_infer([_obs()])
        assert not policy.link.connected
        release.set()
        server.shutdown()
    assert f"{url} did not answer within 1 s (--policy-option timeout=SECONDS)" in \
        _one_line(err.value)


def test_nothing_listening(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # free once closed: nothing listens there
    line = run_cli_fails("iss", str(tmp_path / "none.h5"), "--policy", "remote",
                         "--policy-option", f"url=ws://127.0.0.1:{port}")
    assert f"vlascope: error: no policy server at ws://127.0.0.1:{port}" in line, line
    assert len(line.strip().splitlines()) == 1, line


def test_token(monkeypatch):
    """Beyond loopback without --token: the server makes one up and prints it; a client
    needs it."""
    monkeypatch.delenv("VLASCOPE_TOKEN", raising=False)
    with served("--host", "0.0.0.0") as server:
        said = " ".join(server.printed)
        assert "needs a token" in said and "token=" in said, said
        token = said.split("token=")[1].split()[0]
        url = f"ws://127.0.0.1:{server.port}"
        with pytest.raises(RemotePolicyError) as err:
            make_remote(url)
        assert f"the policy server at {url} needs a token" in _one_line(err.value)
        with pytest.raises(RemotePolicyError, match="needs a token"):
            make_remote(url, token=token[:-1])
        policy = make_remote(url, token=token)
        assert policy.batch_infer([_obs()]).shape == (1, 8, 4)
        policy.close()


def test_unix_socket(tmp_path, capsys):
    path = tmp_path / "policy.sock"
    with served("--unix", str(path)) as server:
        assert server.url == f"unix://{path}" and path.is_socket()
        policy = make_remote(server.url)
        assert policy.batch_infer([_obs()]).shape == (1, 8, 4)
        policy.close()
        capsys.readouterr()
        assert main(["serve", "--unix", str(path)]) != 0
        said = capsys.readouterr().err
        assert f"vlascope: error: {path} already exists; not replacing it" in said, said
        assert path.is_socket()  # the refusal left the running server's socket alone
        server.proc.terminate()  # SIGTERM
        assert server.proc.wait(timeout=60) == 0
    assert not path.exists()  # it removed its own socket
