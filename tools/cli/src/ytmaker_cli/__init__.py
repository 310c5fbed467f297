"""The `ytmaker` command line (docs/cli.md)."""
