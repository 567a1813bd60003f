"""Code run by the ``files-sweeper`` thread (only with file sharing on): it deletes expired stored files and
abandoned partial uploads (`FileStore.sweep`, chat_server.files) with its own SQLite read connection."""
