"""nlp182: word embeddings, attention models and the deep-learning core they stand on."""

__version__ = "0.2.0"  # raised with every change of what a saved run, index or cache entry holds
