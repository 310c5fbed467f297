"""ytmaker's upload service."""
