"""nlp182.vision."""
