"""The interactive face: the `aish>` shell and session mode, over the same command registry and
session core as the pipe face. prompt_toolkit and rich are imported only inside this package
(and the render path), never by the modules management commands load."""
