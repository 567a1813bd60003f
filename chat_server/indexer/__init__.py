"""The ``search-indexer`` thread: keeps the search index (chat_server.searchdb) in step with the history."""
