"""The gateway's own work over its ports: who may see what (access), the write side
(commands), and the sessions of WebSocket clients."""
