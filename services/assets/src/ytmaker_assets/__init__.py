"""ytmaker's assets service."""
