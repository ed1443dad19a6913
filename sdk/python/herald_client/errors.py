"""The client's own exceptions.

    HeraldClientError
    ├── QueueFull        the queue stayed full for block_timeout_s (overflow policy "block")
    ├── ClientClosed     a call after close()
    └── QueueFileInUse   another client holds the queue file

Bad arguments to identify(), track() and set() raise the built-in TypeError and ValueError, with
the argument's name in the message. Nothing that goes wrong later, on the sender thread, raises in
the caller: it reaches the on_rejected and on_error callbacks and the log instead.
"""

from __future__ import annotations


class HeraldClientError(Exception):
    """Raised when the client itself cannot take an event (not for bad arguments)."""


class QueueFull(HeraldClientError):
    """Raised when the queue stayed full for block_timeout_s under the "block" policy."""


class ClientClosed(HeraldClientError):
    """Raised when an event is given to a client after its close()."""


class QueueFileInUse(HeraldClientError):
    """Raised when the queue file is open in another client (one client per file)."""
