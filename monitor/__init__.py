"""TrailGuard: AWS access-activity monitor."""

__version__ = "0.1.0"


class RequestError(Exception):
    """A request refused for what it was given (a lake URI, a day's files, the demo's folder, a missing option):
    one line that says why. The command line prints it and exits 2; any other exception is a bug. Each module
    raises its own kind, so that telling them apart needs none of those modules loaded."""
