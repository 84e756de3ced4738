"""Session management commands (save, restore, export, templates, merge, stats, info, cleanup,
prune, validate, repair)."""
