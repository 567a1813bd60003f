"""The plain line mode (`chat-client --plain`): one line in, one line out, and its password prompt."""
