"""The HTTP adapter (ASGI)."""
