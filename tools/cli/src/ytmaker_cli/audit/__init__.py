"""`ytmaker replay --verify`: an audit of the log (docs/cli.md, "Audit")."""
