"""Sequence-to-sequence translation with attention: data, tokenisers, model, decoding, training.

Typical use::

    from nlp182.seq2seq import Seq2SeqConfig, Translator, train_seq2seq
    train_seq2seq(Seq2SeqConfig(data="dates"), "runs/dates")
    Translator.load("runs/dates").translate(["May 9th, 2018"])[0].text   # '2018-05-09'
"""

from nlp182.decoding import Hypothesis
from nlp182.seq2seq.batching import Seq2SeqBatch, collate, make_loader
from nlp182.seq2seq.config import Seq2SeqConfig
from nlp182.seq2seq.data import date_splits, read_aligned_files, read_tsv, split_pairs
from nlp182.seq2seq.metrics import corpus_bleu, exact_match, token_error_rate
from nlp182.seq2seq.model import Decoder, Encoder, ModelConfig, Seq2Seq
from nlp182.seq2seq.tokenize import train_tokenizer
from nlp182.seq2seq.train import train_seq2seq
from nlp182.seq2seq.transformer import TransformerSeq2Seq
from nlp182.seq2seq.translator import Translation, Translator

__all__ = [
    "Decoder",
    "Encoder",
    "Hypothesis",
    "ModelConfig",
    "Seq2Seq",
    "Seq2SeqBatch",
    "Seq2SeqConfig",
    "TransformerSeq2Seq",
    "Translation",
    "Translator",
    "collate",
    "corpus_bleu",
    "date_splits",
    "exact_match",
    "make_loader",
    "read_aligned_files",
    "read_tsv",
    "split_pairs",
    "token_error_rate",
    "train_seq2seq",
    "train_tokenizer",
]
