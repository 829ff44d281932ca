"""nlp182.text."""
