"""Identifiers and aliases shared by every layer."""

from typing import Any, NewType

WorkspaceId = NewType("WorkspaceId", int)
KeyId = NewType("KeyId", int)
EventOffset = NewType("EventOffset", int)
"""Position of an event in the log: dense, increasing in commit order."""

JSONObject = dict[str, Any]
