"""nlp182.embeddings."""
