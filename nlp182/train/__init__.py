"""nlp182.train."""
