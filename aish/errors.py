"""Errors users see, each with the exit code the README documents.

Every failure a user can cause or meet is one of these, so the faces can print one clear line
and exit with a stable code instead of a traceback.
"""

OK = 0
FAILURE = 1  # generic failure; also "validate found problems"
USAGE = 2
NOT_FOUND = 3
PROVIDER = 4
STORAGE = 5
LIMIT = 6
REFUSED = 7
CONFIG = 8
DENIED = 9  # the person's role in the session (or the server's ACL rules) does not allow it
INTERRUPTED = 130
BROKEN_PIPE = 141  # stdout's reader left (128 + SIGPIPE, as `cat` and `yes` exit)


class AishError(Exception):
    """An error with a one-line message for the user and an exit code."""

    exit_code = FAILURE

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        text = self.args[0] if self.args else self.__class__.__name__
        return f"{text} ({self.hint})" if self.hint else text


class UsageError(AishError):
    exit_code = USAGE


class SessionNotFound(AishError):
    exit_code = NOT_FOUND


class ProviderError(AishError):
    """The model endpoint failed: names the endpoint and the cause."""

    exit_code = PROVIDER

    def __init__(self, endpoint: str, cause: str):
        super().__init__(f"{endpoint}: {cause}")
        self.endpoint = endpoint
        self.cause = cause


class StorageError(AishError):
    exit_code = STORAGE


class SessionExists(StorageError):
    """A session with that id is already stored (create never overwrites)."""


class LimitError(AishError):
    exit_code = LIMIT


class Refused(AishError):
    exit_code = REFUSED


class ConfigError(AishError):
    exit_code = CONFIG


class PermissionDenied(AishError):
    """The person's role in a session does not allow what was asked, or the Redis server's
    ACL rules refused it."""

    exit_code = DENIED


class Interrupted(AishError):
    """Ctrl-C cut a reply short; what arrived is stored, marked interrupted."""

    exit_code = INTERRUPTED
