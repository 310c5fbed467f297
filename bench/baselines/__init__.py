"""Baselines of issue 11: the two first designs ytmaker came from, minimal and faithful, so that
the benchmark (`bench/delivery.py`) measures ytmaker beside them in the same run.

- `redis_pubsub`: "Task-012", a FastAPI WebSocket per project pushed from Redis Pub/Sub.
- `socketio_rooms`: "task 13.1", python-socketio rooms with join/leave and progress events.

They are labelled baselines: not part of ytmaker, never deployed, and without what ytmaker adds
(offsets, replay, exactly-once): a client that is away loses what was sent meanwhile.
"""
