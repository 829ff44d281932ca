"""nlp182.attention."""
