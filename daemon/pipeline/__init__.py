"""The transcription pipeline: audio, VAD and chunking, ASR, outputs, and the step runner."""
