"""Who said what: speaker labels for a transcript, found offline after transcription."""
