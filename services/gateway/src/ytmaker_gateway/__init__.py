"""ytmaker's gateway service."""
