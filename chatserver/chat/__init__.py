"""The Django side: models, WebSocket consumer, protocol, permissions and authentication."""
