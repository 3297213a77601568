"""Who spoke when: speaker embeddings, diarization, and labelling a transcript by speaker."""
