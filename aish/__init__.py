"""aish — an AI shell whose specialists keep sessions."""

__version__ = "0.1.0"
