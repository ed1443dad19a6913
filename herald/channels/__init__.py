"""Outbound delivery adapters: webhook (aiohttp) and email (SMTP)."""
