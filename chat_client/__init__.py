"""The mpchat client: a Textual TUI, a plain line mode, and an asyncio client library."""
