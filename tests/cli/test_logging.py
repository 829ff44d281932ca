"""Other libraries' INFO lines (faiss.loader, gensim) stay hidden unless -v; ours show."""

from __future__ import annotations

import logging

from nlp182.cli import configure_logging


def test_library_info_hidden_by_default_and_shown_with_v() -> None:
    root = logging.getLogger()
    before = root.level
    try:
        configure_logging(0)
        assert logging.getLogger("nlp182.vision").isEnabledFor(logging.INFO)
        assert not logging.getLogger("faiss.loader").isEnabledFor(logging.INFO)
        assert not logging.getLogger("gensim.models.word2vec").isEnabledFor(logging.INFO)
        assert logging.getLogger("gensim").isEnabledFor(logging.WARNING)
        # matplotlib's font-cache warnings filled training logs: its errors only, unless -v
        assert not logging.getLogger("matplotlib.font_manager").isEnabledFor(logging.WARNING)
        assert logging.getLogger("matplotlib.font_manager").isEnabledFor(logging.ERROR)
        configure_logging(1)
        assert logging.getLogger("matplotlib.font_manager").isEnabledFor(logging.WARNING)
        assert logging.getLogger("faiss.loader").isEnabledFor(logging.INFO)
        assert logging.getLogger("nlp182.train").isEnabledFor(logging.DEBUG)
    finally:
        configure_logging(0)
        root.setLevel(before)


def test_verbose_is_taken_before_or_after_the_command() -> None:
    from nlp182.cli import build_parser

    parser = build_parser()
    for argv, level in ((["neighbors", "r", "king"], 0), (["-v", "neighbors", "r", "king"], 1),
                        (["neighbors", "r", "king", "-v"], 1), (["train", "w2v", "--out", "o", "-vv"], 2)):
        assert parser.parse_args(argv).verbose == level, argv


def test_a_setting_whose_none_means_off_is_unset_with_none() -> None:
    from nlp182.cli import build_parser

    parser = build_parser()
    for command in (["train", "caption"], ["train", "seq2seq"]):
        assert parser.parse_args([*command, "--out", "o", "--clip-grad-norm", "none"]).clip_grad_norm is None
        assert parser.parse_args([*command, "--out", "o", "--clip-grad-norm", "2"]).clip_grad_norm == 2.0
