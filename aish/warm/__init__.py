"""The warm process: a per-user daemon that keeps openai imported and the embedded model loaded,
so that a piped exchange skips the interpreter's heavy start.

A console script connects to it over a Unix socket and hands over its argv, cwd, environment
and its stdin/stdout/stderr descriptors; the daemon forks a child that takes them as its own
and runs the normal CLI in-process, then reports the child's exit status. Whenever the daemon
is absent, refused, stale or broken the command simply runs in the client's own process.

Modules: `protocol` (where the socket lives, its checks, the wire format and the fingerprint),
`client` (the decision and the exchange with the daemon; `aish.cli`'s console scripts call it
first), `spawn` (starting the daemon detached), `server` (the daemon's loop and what it
imports), `warmup` (the work it does once so that no child has to), `child` (one command run
for a client), `modelhost` (the process that holds the embedded model and its memory of the
last prompt), `hostkeeper` (starting it again when it dies) and `hostedmodel` (a command's
stand-in for that model).
"""
