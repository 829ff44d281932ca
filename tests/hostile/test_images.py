"""Hostile caption data: pixel bombs, truncated files, paths out of --images, and non-files as input.

Each case runs ``nlp182`` in a child process (exit code 2, one line, peak RSS and time bounded by
``run_nlp182``); the reader-level checks beside them show that nothing outside --images is opened
and that the refusal reads the same whether or not the outside file exists.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nlp182 import cli
from nlp182.captioning import CaptionConfig, CaptionModelConfig
from nlp182.captioning.captioner import Captioner
from nlp182.captioning.data import load_image
from nlp182.captioning.model import CaptionModel
from nlp182.captioning.readers import read_karpathy, read_tsv
from nlp182.captioning.vocab import CaptionVocab
from nlp182.errors import FileFormatError, InvalidInputError, Nlp182Error
from tests.hostile.child import run_nlp182

TINY = ["--image-size", "16", "--encoder", "small_cnn", "--encoder-width", "0.25", "--grid", "2",
        "--feature-dim", "8", "--embed-dim", "8", "--hidden-size", "8", "--epochs", "1", "--batch-size", "8",
        "--beam-width", "1", "--num-overlays", "1", "--no-progress", "--threads", "1", "--device", "cpu"]


def bilevel_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG of ``width x height``, compressed row by row (a few hundred KB)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the packed pixels
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def _photo(path: Path, size: int = 64) -> Path:
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _tsv(folder: Path, *images: str) -> Path:
    path = folder / "captions.tsv"
    path.write_text("".join(f"{name}\ta red square number {i}\n" for i, name in enumerate(images)))
    return path


def _karpathy(folder: Path, **entry: str) -> Path:
    images = [{"filename": "good.png", "split": "train", "sentences": [{"raw": "a red square"}]},
              {"split": "train", "sentences": [{"raw": "a secret"}], **entry}]
    path = folder / "dataset.json"
    path.write_text(json.dumps({"images": images}, indent=1))
    return path


def _train(data: Path, out: Path, *flags: str) -> list[str]:
    return ["train", "caption", "--data", str(data), "--out", str(out), *flags, *TINY]


@pytest.fixture(scope="module")
def caption_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A captioning run folder with an untrained tiny model (the cases never get to decoding)."""
    folder = tmp_path_factory.mktemp("caption")
    config = CaptionConfig(image_size=16, model=CaptionModelConfig(encoder="small_cnn", encoder_width=0.25,
                                                                    grid=2, feature_dim=8, embed_dim=8,
                                                                    hidden_size=8))
    vocab = CaptionVocab.build(["a red square"])
    Captioner(CaptionModel(len(vocab), config.model), vocab, config).save(folder)
    return folder


def test_a_20000x20000_png_bomb_is_refused_from_its_header(tmp_path: Path, caption_run: Path) -> None:
    _photo(tmp_path / "good.png")
    (tmp_path / "bomb.png").write_bytes(bilevel_png(20000, 20000))
    assert (tmp_path / "bomb.png").stat().st_size < 1_000_000
    data = _tsv(tmp_path, "good.png", "bomb.png")
    train = run_nlp182(*_train(data, tmp_path / "out"))
    train.assert_refused(f"{data} line 2: image", "bomb.png is 400000000 pixels, over the limit of 40000000")
    assert not (tmp_path / "out").exists()
    caption = run_nlp182("caption", str(caption_run), str(tmp_path / "bomb.png"))
    caption.assert_refused("bomb.png", "--max-image-pixels")
    # Below Pillow's own limit the cap decides, and names the size; the cap is a flag.
    (tmp_path / "big.png").write_bytes(bilevel_png(8000, 8000))
    with pytest.raises(FileFormatError, match=r"big\.png is 8000x8000 = 64000000 pixels, over the limit"):
        read_tsv(_tsv(tmp_path, "good.png", "big.png"))
    assert [item.name for item in read_tsv(_tsv(tmp_path, "big.png"), max_pixels=64_000_000)] == ["big.png"]


def test_a_run_whose_config_the_weights_do_not_fit_is_refused_before_the_model_is_built(
    tmp_path: Path, caption_run: Path
) -> None:
    """config.json edited to a hidden size of 8192 beside weights of size 8 built a model of 2.8 GB before
    the weights' shapes were compared; they are compared from the file's header first."""
    run = shutil.copytree(caption_run, tmp_path / "edited")
    config = json.loads((run / "config.json").read_text())
    config["model"].update(hidden_size=8192, embed_dim=8192)
    (run / "config.json").write_text(json.dumps(config))
    caption = run_nlp182("caption", str(run), str(_photo(tmp_path / "good.png")))
    caption.assert_refused(f"{run / 'model.safetensors'}: tensor ", "8192", "by the run's config but (")
    assert caption.seconds < 30 and caption.out == ""


def test_a_truncated_jpeg_fails_the_pre_check_before_any_training(tmp_path: Path, caption_run: Path) -> None:
    _photo(tmp_path / "good.png")
    buffer = io.BytesIO()
    noise = np.random.default_rng(1).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with Image.open(tmp_path / "cut.jpg") as opened:
        opened.verify()  # the header-only check the pre-check used to make passes it
    data = _tsv(tmp_path, "good.png", "cut.jpg")
    outcome = run_nlp182(*_train(data, tmp_path / "out"))
    outcome.assert_refused(f"{data} line 2: image", "cut.jpg cannot be read as an image", "truncated")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))
    with pytest.raises(FileFormatError, match=r"cut\.jpg cannot be read as an image"):
        load_image(tmp_path / "cut.jpg", 16)
    # A format outside the raster list is refused unopened (Pillow's EPS reader runs Ghostscript).
    (tmp_path / "page.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n")
    with Image.open(tmp_path / "page.png") as opened:
        assert opened.format == "EPS"
    with pytest.raises(FileFormatError, match=r"page\.png cannot be read as an image \(not a BMP, GIF, JPEG"):
        load_image(tmp_path / "page.png", 16)


OUTSIDE_CASES = {
    "absolute": lambda outside: {"filename": str(outside / "secret.png")},
    "dotdot": lambda outside: {"filepath": "../../outside", "filename": "secret.png"},
    "symlink": lambda outside: {"filename": "link.png"},
}


@pytest.mark.parametrize("case", sorted(OUTSIDE_CASES))
def test_image_paths_leading_out_of_images_are_refused_unread_and_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    images = tmp_path / "data" / "images"
    images.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    _photo(images / "good.png")
    (images / "link.png").symlink_to(outside / "secret.png")
    data = _karpathy(images.parent, **OUTSIDE_CASES[case](outside))
    opened: list[str] = []
    real_open = Image.open

    def spy(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", spy)
    errors = []
    for exists in (True, False):
        if exists:
            _photo(outside / "secret.png")
        else:
            (outside / "secret.png").unlink()
        with pytest.raises(Nlp182Error) as caught:
            read_karpathy(data, images)
        errors.append(str(caught.value))
    assert errors[0] == errors[1], errors  # the message does not tell whether the outside file exists
    assert "is not inside --images" in errors[0] and f"{data} line" in errors[0]
    assert opened and all("secret" not in path for path in opened), opened  # good.png only
    if case == "absolute":  # the whole command, once: one line, nothing written
        _photo(outside / "secret.png")
        outcome = run_nlp182(*_train(data, tmp_path / "out", "--images", str(images)))
        outcome.assert_refused("is not inside --images")
        assert not (tmp_path / "out").exists()


def test_a_directory_a_fifo_or_dev_zero_as_input_says_what_it_is(
    tmp_path: Path, caption_run: Path, capsys: pytest.CaptureFixture
) -> None:
    fifo = tmp_path / "vectors.fifo"
    os.mkfifo(fifo)
    outcome = run_nlp182("import", str(fifo), "--out", str(tmp_path / "out"))  # reading it would block
    outcome.assert_refused(f"{fifo} is not a regular file")
    outcome = run_nlp182("caption", str(caption_run), "/dev/zero")  # reading it would never end
    outcome.assert_refused("image /dev/zero is not a regular file")
    folder = tmp_path / "folder"
    folder.mkdir()
    out = ["--out", str(tmp_path / "o")]
    for argv, needle in [
        (["train", "caption", "--data", str(folder), *out], f"--data {folder} is a directory"),
        (["caption", str(caption_run), str(folder)], f"image {folder} is a directory"),
        (["import", str(folder), *out], f"{folder} is a directory"),
        (["import", str(tmp_path / "missing.txt"), *out], "missing.txt does not exist"),
        (["train", "w2v", "--corpus", str(folder), "--format", "text", *out], f"{folder} is a folder; name"),
        (["neighbors", "/dev/zero", "word"], "/dev/zero is not a folder"),
    ]:
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and needle in err, (argv, err)
    with pytest.raises(InvalidInputError, match="is not a regular file"):
        load_image("/dev/zero", 16)


def test_an_os_error_no_check_caught_is_still_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import nlp182.embeddings.importing as importing

    def refused(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", "/root/vectors.txt")

    monkeypatch.setattr(importing, "import_vectors", refused)
    assert cli.main(["import", str(tmp_path / "v.txt"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == "nlp182: error: /root/vectors.txt permission denied\n"
