"""Session management over the session core: transfer (save, restore, export), merging,
statistics, hygiene (cleanup, removal, pruning) and integrity (validate, repair).

Each module works on a `aish.sessions.Sessions` and returns plain values; the command handlers in
`aish.commands.manage` format them. Nothing here imports a model client or a terminal library.
"""
