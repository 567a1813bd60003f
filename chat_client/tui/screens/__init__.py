"""The TUI's screens: connect, chat, help."""
