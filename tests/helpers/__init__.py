"""Shared test support: real server processes, keys, and a small JSON-RPC WebSocket client."""
