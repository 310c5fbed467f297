"""The delivery benchmark's parts: targets, clients, producers, measurements, report, plots."""
