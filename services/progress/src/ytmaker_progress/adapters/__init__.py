"""The outside world of the progress service: Kafka metadata the client library lacks."""
