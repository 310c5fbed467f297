"""ytmaker's progress service."""

#: The service name in metrics, logs and the `producer` of the events it writes.
SERVICE = "progress"
