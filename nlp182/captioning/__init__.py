"""nlp182.captioning."""
