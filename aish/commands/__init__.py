"""Commands, declared once in a registry shared by the shell, the pipe face, help and completion."""
