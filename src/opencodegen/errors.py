"""One exception type for bad user input: the CLI prints its message alone, without a traceback."""


class UserError(Exception):
    """A wrong path, malformed config, corrupt checkpoint or bad request; the message names the thing and the reason."""
