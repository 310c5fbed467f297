"""ytmaker's render service."""
