"""The script writers: Gemini (google-genai) and the offline writer."""
