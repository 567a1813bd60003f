-- The history schema of chat_server/storage.py before conversations (replies, edits, deletions,
-- reactions): tests/server/test_conversation.py upgrades a database made with it.
CREATE TABLE IF NOT EXISTS messages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    ts            INTEGER NOT NULL,            -- milliseconds since the Unix epoch
    room_key      TEXT,                        -- fold(room) for a room message, NULL for a direct message
    room          TEXT,                        -- the room's name as shown
    sender        TEXT NOT NULL,               -- the sender's nick as shown
    sender_key    TEXT NOT NULL,               -- fold(sender)
    recipient     TEXT,                        -- direct messages: the recipient's nick as shown
    recipient_key TEXT,                        -- fold(recipient)
    text          TEXT NOT NULL,
    action        INTEGER NOT NULL DEFAULT 0,
    client_msg_id TEXT,
    event         TEXT,                        -- moderation entries: the action (sender = the operator)
    target        TEXT,                        -- moderation entries: the nick acted on
    until         INTEGER                      -- moderation entries: when a timed ban or mute lapses (ms)
);
CREATE INDEX IF NOT EXISTS messages_by_room ON messages (room_key, id) WHERE room_key IS NOT NULL;
-- A client_msg_id is unique per sender and conversation (a room, or the other end of a direct message).
-- Before, it was unique per sender only: that index goes, so one id may serve a room and a DM.
DROP INDEX IF EXISTS messages_dedup;
CREATE UNIQUE INDEX IF NOT EXISTS messages_dedup_by_conversation
    ON messages (sender_key, COALESCE(room_key, '@' || recipient_key), client_msg_id)
    WHERE client_msg_id IS NOT NULL;
-- Direct messages are listed once for each of their two participants, so "my conversations" and
-- "my conversation with P" are both one index range.
CREATE TABLE IF NOT EXISTS direct_index (
    owner_key TEXT NOT NULL,
    peer_key  TEXT NOT NULL,
    id        INTEGER NOT NULL REFERENCES messages (id),
    PRIMARY KEY (owner_key, peer_key, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS direct_by_owner ON direct_index (owner_key, id);
CREATE TABLE IF NOT EXISTS rooms (
    room_key TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    topic    TEXT NOT NULL DEFAULT ''
);
-- File offers (chat_server.files): the message row holds the file's name as its text; this row says it
-- is a file. `files` holds each stored file once, under its SHA-256, whoever offered it how often.
CREATE TABLE IF NOT EXISTS file_offers (
    id     INTEGER PRIMARY KEY REFERENCES messages (id),
    size   INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    sha256       TEXT PRIMARY KEY,
    size         INTEGER NOT NULL,
    stored_at    INTEGER NOT NULL,             -- ms: its latest upload (retention counts from here)
    uploader_key TEXT NOT NULL                 -- fold(nick) of its latest uploader: whose quota it uses
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_by_uploader ON files (uploader_key, stored_at);
