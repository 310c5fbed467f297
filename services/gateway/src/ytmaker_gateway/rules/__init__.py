"""The gateway's rules, pure: no I/O, no clock of their own, no metrics. What the protocol
accepts, which ids it takes, the limits of a connection and of a user, the errors it answers
with, where a client stands in a task's updates."""
