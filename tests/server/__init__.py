"""Tests of the chat server: real sockets on 127.0.0.1 port 0, a real SQLite file in tmp_path."""
