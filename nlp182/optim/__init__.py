"""nlp182.optim."""
