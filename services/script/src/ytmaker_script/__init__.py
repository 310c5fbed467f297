"""ytmaker's script service."""
