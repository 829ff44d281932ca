"""nlp182.seq2seq."""
