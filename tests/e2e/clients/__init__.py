"""End-to-end tests of the Python SDK and the command line, on one running system."""
