"""Herald: self-hostable customer-engagement backend."""

__version__ = "0.1.0"
