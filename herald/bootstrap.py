"""First start: a `default` workspace, and the keys given by HERALD_BOOTSTRAP_*_KEY."""

from __future__ import annotations

import logging

from herald.core.keys import KeyKind
from herald.errors import Conflict
from herald.settings import Settings
from herald.store.base import Store, Workspace

logger = logging.getLogger(__name__)

DEFAULT_WORKSPACE = "default"


async def bootstrap(store: Store, settings: Settings) -> Workspace | None:
    """Create the `default` workspace when none exists; return it then, else None."""
    if await store.list_workspaces():
        return None
    try:
        workspace = await store.create_workspace(DEFAULT_WORKSPACE)
    except Conflict:  # another process sharing the database made it a moment ago
        return None
    logger.info("Created workspace %r (id %d) at first start", workspace.name, workspace.id)
    for kind, key in (
        (KeyKind.WRITE, settings.bootstrap_api_key),
        (KeyKind.ADMIN, settings.bootstrap_admin_key),
    ):
        if key:
            try:
                await store.create_key(workspace.id, kind, key)
            except Conflict:
                logger.warning("The bootstrap %s key is already registered; kept as is", kind)
            else:
                logger.info(
                    "Registered the bootstrap %s key for workspace %r", kind, workspace.name
                )
    return workspace
