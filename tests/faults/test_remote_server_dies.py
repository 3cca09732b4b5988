"""A policy server killed (kill -9) in the middle of a job, as a crashed or OOM-killed one
dies: a rollout's recording keeps every step done and says why it ended; an ISS ends with
one line and leaves its episode file as it was. Real ``vlascope serve`` processes."""

import os
import subprocess
import sys

import h5py
import pytest
from crafted_files import digest
from served import Relay, served

from vlascope.core.episode import Episode
from vlascope.core.errors import PolicyConnectionLost
from vlascope.core.plugins import PluginRegistry
from vlascope.core.runner import rollout
from vlascope.core.saliency.iss import ISSConfig
from vlascope.core.saliency.temporal import episode_iss

#: One request's images (two 96 px cameras): more than three of these through the relay
#: means the client's third request was sent, so its first two steps were recorded.
REQUEST_BYTES = 2 * 96 * 96 * 3


def _remote(url: str):
    return PluginRegistry.discover().create_policy("remote", url=url, connect_timeout=5)


def _record_expert(folder, scene, expert, steps=4):
    path = folder / "ep.h5"
    rollout(scene, expert, "pick_blue", 0, max_steps=steps, record_to=path,
            policy_name="expert")
    return path


def _cli_until_killed(server, args: list[str], sent: int) -> tuple[Relay, str]:
    """Run ``vlascope ARGS`` with ``{url}`` the relay's address, kill -9 the server once the
    client has sent ``sent`` bytes through the relay; the relay and the failed run's stderr
    (it must fail, without a traceback)."""
    relay = Relay(server.port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "vlascope.cli", *(a.format(url=relay.url) for a in args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "VLASCOPE_PLUGIN_PATH": ""})
    try:
        relay.wait_sent(sent, proc)
        server.kill()
        _, stderr = proc.communicate(timeout=120)
    finally:
        relay.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0 and "Traceback" not in stderr, stderr[-3000:]
    return relay, stderr


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("vlascope: error:")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def test_rollout_keeps_the_steps_done(tmp_path, scene):
    out = tmp_path / "rec.h5"
    with served() as server:
        policy = _remote(server.url)

        def kill_at_3(record):
            if record.t == 2:  # three steps done
                server.kill()

        with pytest.raises(PolicyConnectionLost) as err:
            rollout(scene, policy, "pick_red", 0, max_steps=50, record_to=out,
                    policy_name="remote", on_step=kill_at_3)
    message = str(err.value)
    assert server.url in message and str(out) in message, message
    assert err.value.recording == str(out)
    with Episode(out) as ep:
        assert ep.n_steps == 3 and len(ep.actions()) == 3
        assert ep.metadata["steps"] == 3 and ep.metadata["stopped_early"] is True
        assert "connection was lost at step 3" in ep.metadata["ended"]
        assert server.url in ep.metadata["ended"]
        ep.frame(2, "front")


def test_cancelled_rollout_still_leaves_nothing(tmp_path, scene, expert):
    """Only a lost connection keeps a partial recording; a cancel keeps today's contract."""
    from vlascope.core.errors import CancelledError

    out = tmp_path / "rec.h5"
    steps = []
    with pytest.raises(CancelledError):
        rollout(scene, expert, "pick_red", 0, max_steps=20, record_to=out,
                on_step=steps.append, should_cancel=lambda: len(steps) >= 2)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_record_says_where_the_partial_recording_is(tmp_path):
    out = tmp_path / "rec.h5"
    with served() as server:
        relay, stderr = _cli_until_killed(
            server, ["record", "--policy", "remote", "--policy-option", "url={url}", "--task",
                     "pick_red", "--max-steps", "400", "--out", str(out)], 3 * REQUEST_BYTES)
    line = _one_error_line(stderr)
    assert relay.url in line and str(out) in line and "steps done (" in line, line
    with Episode(out) as ep:
        assert ep.n_steps >= 2 and ep.metadata["stopped_early"] is True
        assert relay.url in ep.metadata["ended"]


def test_iss_ends_with_the_error(tmp_path, scene, expert):
    path = _record_expert(tmp_path, scene, expert)
    with served() as server:
        policy = _remote(server.url)
        frames = []

        def kill_after_first(done, total):
            frames.append(done)
            if done == 1:
                server.kill()

        with Episode(path) as ep, pytest.raises(PolicyConnectionLost, match="went away"):
            episode_iss(policy, ep, ISSConfig(n_masks=8, batch_size=4), every=1, check=0,
                        progress=kill_after_first)
    assert frames == [1]


def test_cli_iss_leaves_the_episode_as_it_was(tmp_path, scene, expert):
    path = _record_expert(tmp_path, scene, expert)
    before = digest(path)
    with served() as server:  # killed once a batch of masked frames went out
        relay, stderr = _cli_until_killed(
            server, ["iss", str(path), "--policy", "remote", "--policy-option", "url={url}",
                     "--n", "400", "--batch-size", "8", "--every", "1", "--check", "0"],
            8 * REQUEST_BYTES)
    line = _one_error_line(stderr)
    assert relay.url in line and "went away" in line and f"nothing stored in {path}" in line, \
        line
    assert digest(path) == before
    with Episode(path) as ep, h5py.File(path, "r") as h5:
        assert ep.n_steps == 4 and "saliency" not in h5


def test_a_server_still_gone_ends_jobs_as_lost_and_its_return_is_checked():
    """After the first failure the next call connects anew: a server still gone is still a
    lost connection (the job keeps its work); one back on the same address serving the same
    policy just works; one serving another policy is refused by name."""
    import numpy as np

    from vlascope.core.policy import Observation
    from vlascope.remote.client import RemotePolicyError

    obs = Observation({c: np.full((96, 96, 3), 120, np.uint8) for c in ("front", "wrist")},
                      np.zeros(4, np.float32), "pick up the red cube")
    with served() as server:
        policy = _remote(server.url)
        first = policy.batch_infer([obs])
        port = server.port
        server.kill()
        with pytest.raises(PolicyConnectionLost, match="went away"):
            policy.batch_infer([obs])
        with pytest.raises(PolicyConnectionLost, match="still gone"):
            policy.batch_infer([obs])
    with served("--port", str(port)):
        policy.reset()
        np.testing.assert_array_equal(policy.batch_infer([obs]), first)
    with served("--port", str(port), "--policy", "reference-shortcut"):
        with pytest.raises(PolicyConnectionLost, match="went away"):  # the one just stopped
            policy.batch_infer([obs])
        with pytest.raises(RemotePolicyError, match="now serves remote:vlascope/reference-"
                                                    "shortcut, not remote:vlascope/reference"):
            policy.batch_infer([obs])
        assert policy.policy_id == "remote:vlascope/reference"
