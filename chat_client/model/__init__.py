"""The chat model, UI-free: what the user sees (rooms, buffers, lines, members) and what they type.

`ChatModel` turns the library's events into buffers and lines; the commands parse what is typed; the
controller runs a command against a `ChatClient`. The TUI and the plain line mode both draw from here;
nothing here imports Textual.
"""
