"""Who is on the socket: tokens, WebSocket auth, revocation, origins."""
