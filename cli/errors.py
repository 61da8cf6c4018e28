"""The one error type commands raise: printed as a single line, never a traceback."""


class CommandError(Exception):
    """A command cannot do what was asked; the message says why and names the setting at fault."""
