"""The lab: tools and lessons for watching the protocol and the threads at work (`chat-lab --help`).

`chat_lab` sits beside the server and the client, never inside them: it may import `shared` (the protocol),
and it drives `chat_server` and `chat_client` only as a user would, through their command lines, their public
library (`chat_client.net.client.ChatClient`) and the network. docs/lessons.md is the reading order.
"""
