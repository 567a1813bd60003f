"""File sharing across the cluster's servers (docs/cluster.md, "Files are shared through the object store").

Two chat servers on the real three-node NATS cluster: a file uploaded to one is downloaded from the other
(fetched from JetStream's object store, its SHA-256 checked); while NATS is down, uploads and downloads of
files not held are refused, nothing is acknowledged that is not stored, and sharing works again once NATS is
back. The last test stops the module's NATS cluster (and starts it again). An upload cut off on a server
that goes away: tests/cluster/test_upload_resume.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Callable

import nats
import pytest

from benchmarks.natscluster import NatsCluster
from chat_server.cluster.config import DEFAULT_FETCH_TIMEOUT, ClusterConfig
from chat_server.server import ChatServer
from shared import (
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    Error,
    FileDone,
    FileOffered,
    FileProgress,
    GetFile,
    Hello,
    History,
    Join,
    Welcome,
)
from shared.limits import DEFAULT_FILE_CHUNK
from tests.cluster.test_message_log import login_when_free
from tests.server.client import ChatTestClient, wait_until
from tests.server.conftest import no_leaks
from tests.server.files_client import download, offer, send_chunks, sha256, upload

#: After each test, threads and file descriptors are back to their baseline (tests/server/conftest.py).
__all__ = ["no_leaks"]

CHUNK = DEFAULT_FILE_CHUNK
SIZE = 40 * CHUNK + 123


def test_a_file_uploaded_to_one_server_is_downloaded_from_another(
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    """alice uploads on one; bob, on the other, is offered it with the same id and downloads the same bytes
    (the other server fetched them from the object store into its own folder)."""
    one, two = start_cluster_server("one"), start_cluster_server("two")
    data = os.urandom(SIZE)
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        alice.login("alice", ["lobby"])
        bob.login("bob", ["lobby"])
        done = upload(alice, data, client_msg_id="f-1").done
        assert done is not None
        offered = bob.recv(FileOffered)
        assert (offered.id, offered.nick, offered.sha256, offered.size) == (
            done.id,
            "alice",
            sha256(data),
            SIZE,
        )
        assert two.files is not None
        assert not two.files.object_path(sha256(data)).exists()  # not fetched before it is asked for
        held = download(bob, done.id)
        assert held == data
        assert sha256(held) == offered.sha256
        assert two.files.object_path(sha256(data)).read_bytes() == data
        # Resume from the middle, as after a dropped connection: the same offsets as on one server.
        assert download(bob, done.id, start=data[: 7 * CHUNK + 5]) == data


def test_a_file_offer_resent_to_another_server_is_stored_once(
    start_cluster_server: Callable[..., ChatServer], cluster_config: ClusterConfig
) -> None:
    """A file offer carries its `client_msg_id` into the log as `say` does: JetStream's message id, so a
    resend reaching another server before that server applied the first is dropped by JetStream itself;
    and resent to the other server, the offer is answered `file_done {duplicate}` with the first one's id,
    and offered to nobody again."""
    one, two = start_cluster_server("one"), start_cluster_server("two")
    data = os.urandom(3 * CHUNK)
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        alice.login("alice", ["lobby"])
        bob.login("bob", ["lobby"])
        first = upload(alice, data, client_msg_id="f-1").done
        assert first is not None
        assert not first.duplicate
        assert bob.recv(FileOffered).id == first.id
        assert asyncio.run(_publish_again(cluster_config, first.id)) == (True, first.id)
        alice.close()
        with login_when_free(two.address, "alice", ["lobby"]) as again:  # the same nick, on the other server
            second = upload(again, data, client_msg_id="f-1").done
            assert second is not None
            assert (second.duplicate, second.id) == (True, first.id)
        assert not [m for m in bob.drain() if isinstance(m, FileOffered)]


async def _publish_again(config: ClusterConfig, seq: int) -> tuple[bool, int]:
    """Publish the log's record `seq` again, with its headers, as a server that has not applied it would
    resend it: (JetStream's `duplicate`, the sequence it answers)."""
    connection = await nats.connect(servers=list(config.urls))
    try:
        js = connection.jetstream()
        stored = await js.get_msg(config.stream, seq)
        assert stored.headers is not None
        assert "Nats-Msg-Id" in stored.headers
        ack = await js.publish(config.log_subject, stored.data or b"", headers=dict(stored.headers))
        return bool(ack.duplicate), ack.seq
    finally:
        await connection.close()


def test_a_download_cut_off_by_a_stopped_server_resumes_on_the_other(
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    """bob downloads half a file from the server it was uploaded to, which then stops; on the other server
    he asks from the length he holds and gets the rest: the same bytes, the same SHA-256."""
    one, two = start_cluster_server("one"), start_cluster_server("two")
    data = os.urandom(SIZE)
    with ChatTestClient(one.address) as alice, ChatTestClient(one.address) as bob:
        token = bob.login("bob", ["lobby"]).resume_token
        alice.login("alice", ["lobby"])
        done = upload(alice, data).done
        assert done is not None
        held = download(bob, done.id, stop_after=SIZE // 2)
        assert 0 < len(held) < SIZE
    one.stop()
    with _failed_over(two, "bob", token) as bob:
        whole = download(bob, done.id, start=held)
    assert whole == data
    assert sha256(whole) == sha256(data)


def test_a_direct_file_reaches_its_recipient_on_another_server(
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    """A file offered to a nick logged in on the other server is offered to it there, and downloads."""
    one, two = start_cluster_server("one"), start_cluster_server("two")
    data = os.urandom(3 * CHUNK)
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        alice.login("alice", [])
        bob.login("bob", [])
        done = upload(alice, data, to="bob", name="for-bob.bin").done
        assert done is not None
        offered = bob.recv(FileOffered)
        assert (offered.id, offered.to, offered.name) == (done.id, "bob", "for-bob.bin")
        assert download(bob, done.id) == data


def test_a_download_waits_at_most_fetch_timeout_then_finds_the_file(
    cluster_config: ClusterConfig, start_cluster_server: Callable[..., ChatServer]
) -> None:
    """A fetch slower than `fetch_timeout` is answered `history_unavailable` (`still being fetched`); it goes
    on meanwhile, and a later `file_get` is served."""
    hasty = dataclasses.replace(cluster_config, fetch_timeout=0.001)
    one, two = start_cluster_server("one"), start_cluster_server("two", cluster=hasty)
    data = os.urandom(SIZE)
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        alice.login("alice", ["lobby"])
        bob.login("bob", ["lobby"])
        done = upload(alice, data).done
        assert done is not None
        bob.send(GetFile(id=done.id, offset=0, ref=5))
        late = bob.recv(Error, ref=5)
        assert (late.code, late.message) == (
            "history_unavailable",
            "the file is still being fetched from the cluster: try again",
        )
        assert _download_when_served(bob, done.id) == data  # asked again until the fetch is done


def test_a_file_gone_from_the_object_store_is_no_such_file(
    cluster_config: ClusterConfig, start_cluster_server: Callable[..., ChatServer]
) -> None:
    """A file the object store no longer has (expired, deleted) cannot be fetched: `no_such_file`, as on a
    single server for a file past its retention; the server that holds its own copy still serves it."""
    one, two = start_cluster_server("one"), start_cluster_server("two")
    data = os.urandom(2 * CHUNK)
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        alice.login("alice", ["lobby"])
        bob.login("bob", ["lobby"])
        done = upload(alice, data).done
        assert done is not None
        asyncio.run(_delete_object(cluster_config, sha256(data)))
        bob.send(GetFile(id=done.id, offset=0, ref=5))
        gone = bob.recv(Error, ref=5)
        assert (gone.code, gone.message) == ("no_such_file", "the file is no longer in the cluster")
        assert download(alice, done.id) == data


async def _delete_object(config: ClusterConfig, name: str) -> None:
    """Delete the object `name` from the cluster's files bucket (a connection of the test's own)."""
    connection = await nats.connect(list(config.urls))
    try:
        bucket = await connection.jetstream().object_store(config.files_bucket_name)
        await bucket.delete(name)
    finally:
        await connection.close()


def test_the_files_bucket_setting() -> None:
    """`files_bucket` defaults to PREFIX-files or takes a name of its own; bad values are refused."""
    assert ClusterConfig(bucket_prefix="team").files_bucket_name == "team-files"
    assert ClusterConfig(files_bucket="shared").files_bucket_name == "shared"
    assert ClusterConfig().fetch_timeout == DEFAULT_FETCH_TIMEOUT
    with pytest.raises(ValueError, match="files_bucket"):
        ClusterConfig(files_bucket="a.b")
    with pytest.raises(ValueError, match="fetch_timeout"):
        ClusterConfig(fetch_timeout=0)


def _failed_over(server: ChatServer, nick: str, token: str | None) -> ChatTestClient:
    """Log `nick` in on `server` with its old session's resume token, as a client failing over does (tried
    again until the other server's entry for the nick is taken over or has expired), in the lobby."""
    clients: list[ChatTestClient] = []

    def logged_in() -> bool:
        client = ChatTestClient(server.address)
        client.send(Hello(proto=PROTOCOL_NAME, version=PROTOCOL_VERSION, nick=nick, resume_token=token))
        answer = client.recv_until(lambda m: isinstance(m, Welcome | Error), 10.0)
        if isinstance(answer, Error):
            client.close()
            return False
        clients.append(client)
        return True

    wait_until(logged_in, 30.0, f"{nick} logged in on the other server")
    client = clients[0]
    client.send(Join(room="lobby", ref=9))
    client.recv(History)
    return client


def test_while_nats_is_down_files_are_refused_and_nothing_unstored_is_acked(
    nats_cluster: NatsCluster,
    cluster_config: ClusterConfig,
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    """NATS down: a new offer is refused with `history_unavailable`; so is an upload finished meanwhile (no
    `file_done`, nobody offered it), and a download of a file the server does not hold. NATS back: the same
    file is shared and downloads on the other server."""
    quick = dataclasses.replace(cluster_config, publish_timeout=1.0)
    one, two = start_cluster_server("one", cluster=quick), start_cluster_server("two", cluster=quick)
    before, data = os.urandom(2 * CHUNK), os.urandom(SIZE)
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        alice.login("alice", ["lobby"])
        bob.login("bob", ["lobby"])
        shared = upload(alice, before, name="before.bin").done
        assert shared is not None
        assert bob.recv(FileOffered).id == shared.id
        started = offer(alice, data, client_msg_id="down-1")
        assert isinstance(started, FileProgress)
        confirmed = send_chunks(alice, started.upload, data, 0, stop_after=SIZE - CHUNK)
        assert confirmed < SIZE
        nats_cluster.stop()
        try:
            wait_until(
                lambda: not one.cluster_connected and not two.cluster_connected, 30.0, "NATS seen gone"
            )
            refused = offer(alice, os.urandom(10), name="new.bin", ref=7)
            assert isinstance(refused, Error)
            assert refused.code == "history_unavailable"
            # The last bytes: the file is complete on the server, and cannot go into the object store.
            send_chunks(alice, started.upload, data, confirmed)
            failed = alice.recv_until(
                lambda m: isinstance(m, FileDone | Error) and getattr(m, "ref", 1) == 1, 60
            )
            assert isinstance(failed, Error), failed
            assert failed.code == "history_unavailable"
            bob.send(GetFile(id=shared.id, offset=0, ref=8))
            unfetched = bob.recv_until(lambda m: getattr(m, "ref", None) == 8, 30)
            assert isinstance(unfetched, Error), unfetched
            assert unfetched.code == "history_unavailable"
        finally:
            nats_cluster.start()
        wait_until(lambda: one.cluster_connected and two.cluster_connected, 60.0, "both servers reconnected")
        assert _download_when_served(bob, shared.id) == before
        done = _upload_when_back(alice, data)
        offered = bob.recv_until(lambda m: isinstance(m, FileOffered) and m.id == done.id, 30)
        assert isinstance(offered, FileOffered)
        assert download(bob, done.id) == data


def _download_when_served(client: ChatTestClient, message_id: int) -> bytes:
    """Download the file `message_id`, asking again while it is refused with `history_unavailable` (the
    fetch is not done yet, or JetStream is still electing its leaders)."""
    held: list[bytes] = []

    def downloaded() -> bool:
        try:
            held.append(download(client, message_id))
        except AssertionError as refused:
            if "history_unavailable" not in str(refused):
                raise
            return False
        return True

    wait_until(downloaded, 60.0, "the download served")
    return held[0]


def _upload_when_back(client: ChatTestClient, data: bytes) -> FileDone:
    """Upload `data` again until it is shared (JetStream may still be electing leaders: refused meanwhile)."""
    results: list[FileDone] = []

    def shared() -> bool:
        result = upload(client, data, client_msg_id="down-1", ref=20 + len(results))
        if result.done is not None:
            results.append(result.done)
        return result.done is not None

    wait_until(shared, 60.0, "the upload shared once NATS is back")
    return results[0]
