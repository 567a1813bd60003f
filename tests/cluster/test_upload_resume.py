"""An upload cut off on a server that goes away resumes on another (docs/cluster.md, "An upload in progress
is checkpointed"): its confirmed prefix is checkpointed into the cluster's object store every
`upload_checkpoint` bytes and when its connection ends, and a `file_offer` on another server starts from
there. Real chat servers (one a real process, for `kill -9`) on a real three-node NATS cluster.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import pytest
from nats.js.api import ObjectMeta
from nats.js.errors import NotFoundError

from benchmarks.natscluster import NatsCluster
from chat_server.cluster.checkpoints import SEGMENT_PREFIX, segment_name
from chat_server.cluster.config import DEFAULT_UPLOAD_CHECKPOINT, ClusterConfig
from chat_server.config import ServerConfig, load_toml
from chat_server.server import ChatServer
from shared import CancelFile, Error, FileDone, FileOffered, FileProgress, Ok
from shared.limits import DEFAULT_FILE_CHUNK
from shared.text import fold
from tests.cluster.test_files import _failed_over
from tests.cluster.test_message_log import login_when_free
from tests.server.client import ChatTestClient, wait_until
from tests.server.conftest import no_leaks
from tests.server.files_client import download, offer, send_chunks, sha256
from tests.server.process import ServerProcess

#: After each test, threads and file descriptors are back to their baseline (tests/server/conftest.py).
__all__ = ["no_leaks"]

CHUNK = DEFAULT_FILE_CHUNK
SIZE = 40 * CHUNK + 123
#: A checkpoint every 8 chunks: 20 chunks sent make two checkpoints (and a third when the connection ends).
EVERY = 8 * CHUNK
CUT = 20 * CHUNK


@pytest.fixture
def checkpointing(cluster_config: ClusterConfig) -> ClusterConfig:
    """The test's cluster settings with a checkpoint every `EVERY` bytes."""
    return dataclasses.replace(cluster_config, upload_checkpoint=EVERY)


def _partial(server: ChatServer, data: bytes, nick: str = "alice") -> str:
    """The partial file's name of `nick`'s upload of `data` (the same on every server)."""
    assert server.files is not None
    return server.files.partial_name(fold(nick), len(data), sha256(data))


def _segments(config: ClusterConfig, partial: str) -> dict[int, int]:
    """The upload's segments in the checkpoints bucket: {start: length} (read by a connection of the test)."""

    async def read() -> dict[int, int]:
        connection = await nats.connect(list(config.urls))
        try:
            bucket = await connection.jetstream().object_store(config.partial_bucket_name)
            try:
                infos = await bucket.list(ignore_deletes=True)
            except NotFoundError:
                return {}
            prefix = f"{SEGMENT_PREFIX}{partial}-"
            return {
                int(info.name[len(prefix) :]): int(info.size or 0)
                for info in infos
                if info.name.startswith(prefix) and not info.deleted
            }
        finally:
            await connection.close()

    return asyncio.run(read())


def _chain_end(segments: dict[int, int]) -> int:
    """Where the chain of segments from offset 0 ends."""
    end = 0
    while end in segments:
        end += segments[end]
    return end


def _checkpointed(config: ClusterConfig, partial: str, at_least: int) -> int:
    """Wait until the upload's chain in the cluster reaches `at_least` bytes; return its end."""
    ends: list[int] = []

    def reached() -> bool:
        ends.append(_chain_end(_segments(config, partial)))
        return ends[-1] >= at_least

    wait_until(reached, 30.0, f"a checkpoint of {at_least} bytes")
    return ends[-1]


def _finish(client: ChatTestClient, data: bytes, cmid: str, ref: int) -> tuple[int, FileDone]:
    """Offer `data` again on `client`'s server and upload the rest: (the offset it resumed from, its
    `file_done`)."""
    resumed = offer(client, data, client_msg_id=cmid, ref=ref)
    assert isinstance(resumed, FileProgress), resumed
    send_chunks(client, resumed.upload, data, resumed.offset, ref=ref)
    return resumed.offset, client.recv(FileDone, upload=resumed.upload)


def test_an_upload_cut_off_resumes_on_another_server_from_its_checkpoint(
    checkpointing: ClusterConfig, start_cluster_server: Callable[..., ChatServer]
) -> None:
    """alice's connection to server one ends after 20 chunks (one then stops): her offer on server two starts
    from all she had confirmed (checkpointed every 8 chunks and when the connection ended), the upload
    completes there, the file downloads with its SHA-256 from two and from one started again, and the
    checkpoint is gone once the file is shared."""
    one = start_cluster_server("one", cluster=checkpointing)
    two = start_cluster_server("two", cluster=checkpointing)
    data, partial = os.urandom(SIZE), ""
    with ChatTestClient(two.address) as bob:
        bob.login("bob", ["lobby"])
        with ChatTestClient(one.address) as alice:
            token = alice.login("alice", ["lobby"]).resume_token
            started = offer(alice, data, client_msg_id="cut-1")
            assert isinstance(started, FileProgress)
            confirmed = send_chunks(alice, started.upload, data, 0, stop_after=CUT)
            assert confirmed >= CUT
            partial = _partial(two, data)
            assert _checkpointed(checkpointing, partial, 2 * EVERY) >= 2 * EVERY  # while it is fed
        assert _checkpointed(checkpointing, partial, confirmed) == confirmed  # the connection ended
        one.stop()
        with _failed_over(two, "alice", token) as again:
            offset, done = _finish(again, data, "cut-1", ref=2)
            assert offset == confirmed
        offered = bob.recv(FileOffered)
        assert (offered.id, offered.sha256) == (done.id, sha256(data))
        held = download(bob, done.id)
        assert sha256(held) == sha256(data)
        assert held == data
    wait_until(lambda: not _segments(checkpointing, partial), 30.0, "the checkpoint deleted")
    restarted = start_cluster_server("one", cluster=checkpointing)
    with ChatTestClient(restarted.address) as carol:
        carol.login("carol", ["lobby"])
        assert download(carol, done.id) == data


@pytest.fixture
def process_and_server(
    tmp_path: Path,
    nats_cluster: NatsCluster,
    checkpointing: ClusterConfig,
    start_cluster_server: Callable[..., ChatServer],
) -> Iterator[tuple[ServerProcess, ChatServer]]:
    """Server one as a `chat-server --cluster` process (to be killed), server two in this process."""
    toml = tmp_path / "server.toml"
    toml.write_text(
        f'[cluster]\nstream = "{checkpointing.stream}"\nsubject_prefix = "{checkpointing.subject_prefix}"\n'
        f'bucket_prefix = "{checkpointing.bucket_prefix}"\nupload_checkpoint = {EVERY}\n'
    )
    arguments = ["--config", str(toml), "--cluster", nats_cluster.url_list, "--port", "0"]
    arguments += ["--rate-messages", "1000", "--rate-burst", "1000", "--data-dir", str(tmp_path / "process")]
    with ServerProcess(*arguments) as one:
        assert one.address is not None, one.first_line
        yield one, start_cluster_server("two", cluster=checkpointing)
    for pipe in (one.process.stdout, one.process.stderr):  # read to their end: closed now, not when collected
        if pipe is not None:
            pipe.close()


def test_an_upload_cut_off_by_kill_9_resumes_from_its_last_checkpoint(
    checkpointing: ClusterConfig, process_and_server: tuple[ServerProcess, ChatServer]
) -> None:
    """Server one is killed (`kill -9`) in the middle of alice's upload: on server two she resumes from the
    last checkpoint written while the upload was fed (a multiple of `upload_checkpoint`, more than 0), and
    the file completes with its SHA-256."""
    one, two = process_and_server
    assert one.address is not None
    data = os.urandom(SIZE)
    partial = _partial(two, data)
    with ChatTestClient(one.address) as alice:
        token = alice.login("alice", ["lobby"]).resume_token
        started = offer(alice, data, client_msg_id="kill-1")
        assert isinstance(started, FileProgress)
        assert send_chunks(alice, started.upload, data, 0, stop_after=CUT) >= CUT
        checkpointed = _checkpointed(checkpointing, partial, 2 * EVERY)
        one.kill()
    assert checkpointed % EVERY == 0
    assert _chain_end(_segments(checkpointing, partial)) == checkpointed  # nothing written after the kill
    with _failed_over(two, "alice", token) as again:
        offset, done = _finish(again, data, "kill-1", ref=2)
        assert offset == checkpointed
        held = download(again, done.id)
    assert sha256(held) == sha256(data)
    assert held == data


@pytest.mark.parametrize("damage", ["wrong bytes", "truncated"])
def test_a_checkpoint_that_does_not_match_is_not_used(
    damage: str, checkpointing: ClusterConfig, start_cluster_server: Callable[..., ChatServer]
) -> None:
    """A checkpoint segment whose bytes are not the ones its server wrote (other bytes under the same
    headers, or fewer of them) is dropped: the offer on the other server starts at 0, and the file is
    right."""
    one = start_cluster_server("one", cluster=checkpointing)
    two = start_cluster_server("two", cluster=checkpointing)
    data = os.urandom(SIZE)
    partial = _partial(two, data)
    with ChatTestClient(one.address) as alice:
        alice.login("alice", ["lobby"])
        started = offer(alice, data, client_msg_id="bad-1")
        assert isinstance(started, FileProgress)
        confirmed = send_chunks(alice, started.upload, data, 0, stop_after=CUT)
    assert _checkpointed(checkpointing, partial, confirmed) == confirmed
    asyncio.run(_damage(checkpointing, segment_name(partial, 0), damage))
    with login_when_free(two.address, "alice", ["lobby"]) as again:
        offset, done = _finish(again, data, "bad-1", ref=2)
        assert offset == 0
        assert download(again, done.id) == data


async def _damage(config: ClusterConfig, name: str, damage: str) -> None:
    """Replace the segment `name` with other bytes (or its first half) under the same headers."""
    connection = await nats.connect(list(config.urls))
    try:
        bucket = await connection.jetstream().object_store(config.partial_bucket_name)
        stored = await bucket.get(name)
        data = stored.data or b""
        meta = ObjectMeta(name=name, headers=dict(stored.info.headers or {}))
        if damage == "truncated":
            replaced = data[: len(data) // 2]
        else:
            replaced = bytes(byte ^ 0xFF for byte in data[:16]) + data[16:]
        await bucket.put(name, replaced, meta=meta)
    finally:
        await connection.close()


def test_a_cancelled_upload_leaves_no_checkpoint(
    checkpointing: ClusterConfig, start_cluster_server: Callable[..., ChatServer]
) -> None:
    """An upload checkpointed while it is fed, then cancelled (`file_cancel`): its segments are deleted."""
    one = start_cluster_server("one", cluster=checkpointing)
    data = os.urandom(SIZE)
    partial = _partial(one, data)
    with ChatTestClient(one.address) as alice:
        alice.login("alice", ["lobby"])
        started = offer(alice, data)
        assert isinstance(started, FileProgress)
        send_chunks(alice, started.upload, data, 0, stop_after=CUT)
        assert _checkpointed(checkpointing, partial, 2 * EVERY) >= 2 * EVERY
        alice.send(CancelFile(upload=started.upload, ref=3))
        alice.recv(Ok, ref=3)
        wait_until(lambda: not _segments(checkpointing, partial), 30.0, "the checkpoint deleted")


def test_the_upload_checkpoint_setting(tmp_path: Path) -> None:
    """`upload_checkpoint` defaults to 8 MiB, is read from server.toml (0 turns checkpoints off), and a
    value that is not a whole number of bytes is refused."""
    assert ClusterConfig().upload_checkpoint == DEFAULT_UPLOAD_CHECKPOINT == 8 * 1024 * 1024
    assert ClusterConfig(files_bucket="shared").partial_bucket_name == "shared-partial"
    toml = tmp_path / "server.toml"
    for value in (0, 1048576):
        toml.write_text(f'[cluster]\nurls = ["nats://127.0.0.1:4222"]\nupload_checkpoint = {value}\n')
        assert ServerConfig(**load_toml(toml)).cluster.upload_checkpoint == value
    for bad in ("-1", "1.5", '"8M"', "true"):
        toml.write_text(f"[cluster]\nupload_checkpoint = {bad}\n")
        with pytest.raises(ValueError, match="upload_checkpoint"):
            ServerConfig(**load_toml(toml))


def test_while_nats_is_down_an_upload_goes_on_without_checkpoints(
    nats_cluster: NatsCluster, checkpointing: ClusterConfig, start_cluster_server: Callable[..., ChatServer]
) -> None:
    """NATS stops in the middle of an upload: the chunks sent past several checkpoint boundaries are all
    confirmed, with no error (the checkpoints are skipped). Stops the module's NATS cluster (last test)."""
    one = start_cluster_server("one", cluster=checkpointing)
    data = os.urandom(SIZE)
    with ChatTestClient(one.address) as alice:
        alice.login("alice", ["lobby"])
        started = offer(alice, data)
        assert isinstance(started, FileProgress)
        confirmed = send_chunks(alice, started.upload, data, 0, stop_after=EVERY)
        nats_cluster.stop()
        try:
            wait_until(lambda: not one.cluster_connected, 30.0, "NATS seen gone")
            end = confirmed + 3 * EVERY
            assert send_chunks(alice, started.upload, data, confirmed, end=end) == end
            assert not [m for m in alice.drain() if isinstance(m, Error)]
        finally:
            nats_cluster.start()
