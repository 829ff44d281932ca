"""nlp182: word embeddings, attention models and the deep-learning core they stand on."""

__version__ = "0.1.0"
