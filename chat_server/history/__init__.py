"""Code run by the one ``history`` thread: every change to the shared chat state, in one order.

`thread` is the loop (its queue, group commit, one sender wake-up per batch); the other modules are its
handlers: the login and nicks (`chat`), messages (`messaging`), rooms (`rooms`, `roomstate`), moderation
(`moderation`, `rules`, `operators`), registered nicks (`accounts`) and file offers (`fileoffers`). Nothing
here runs on another thread, so the room rules and the writer's SQLite connection need no lock; the hub's
dictionaries are changed here under ``Hub.lock`` because readers read them.
"""
