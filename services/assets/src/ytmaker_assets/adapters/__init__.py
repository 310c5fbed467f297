"""The outside world of the assets stages: image makers, speech, avatars."""
