"""The Socket.IO endpoint: the `/progress` namespace of the first design, on the same fan-out and
replay as the WebSocket (docs/protocol.md "Socket.IO"; docs/decisions/0061-socketio-recovery.md)."""
