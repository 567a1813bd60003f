"""The Textual terminal UI: the app, its screens and widgets, rendering and the palette.

It talks to the server only through the library's public API (`chat_client.net.client.ChatClient`),
never through sockets.
"""
