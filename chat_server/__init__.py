"""The mpchat server: a threaded TCP chat server with rooms, direct messages and durable history."""
