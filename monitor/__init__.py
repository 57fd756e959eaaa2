"""TrailGuard: AWS access-activity monitor."""

__version__ = "0.1.0"
