"""Outbound delivery adapters: webhook (httpx) and email (SMTP)."""
