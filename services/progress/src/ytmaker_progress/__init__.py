"""ytmaker's progress service."""
