"""Built-in sets (disjoint digit scans, grammar captions, boxes), readers and their one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from nlp182.captioning.builtin import DIGIT_NAMES, digit_pools, digits_splits, make_shape_scenes
from nlp182.captioning.data import load_image
from nlp182.captioning.readers import read_karpathy, read_tsv, split_images
from nlp182.captioning.vocab import EOS_ID, UNK_ID, CaptionVocab, tokenize
from nlp182.errors import FileFormatError, InvalidInputError, MissingFileError


def test_digit_pools_share_no_scan() -> None:
    pools = digit_pools(seed=0)
    seen = {scan.tobytes() for scan in pools["train"][0]}
    assert not any(scan.tobytes() in seen for name in ("valid", "test") for scan in pools[name][0])
    assert sum(len(p[1]) for p in pools.values()) == 1797


def test_digit_canvases_read_left_to_right_with_boxes_holding_the_ink() -> None:
    splits = digits_splits((20, 2, 20), size=48)
    test_scans = {scan.tobytes() for scan in digit_pools(0)["test"][0]}
    assert len(test_scans) > 0
    for item in splits["train"] + splits["test"]:
        words = item.captions[0].split()
        assert 1 <= len(words) <= 5 and words == [o.name for o in item.objects]
        assert all(w in DIGIT_NAMES for w in words)
        x0s = [o.box[0] for o in item.objects]
        assert x0s == sorted(x0s)
        for left, right in zip(item.objects, item.objects[1:], strict=False):
            assert left.box[2] <= right.box[0]  # disjoint, in reading order
        ink = item.image[0].clone()
        for obj in item.objects:
            x0, y0, x1, y1 = obj.box
            ink[y0:y1, x0:x1] = 0
        assert float(ink.abs().sum()) == 0.0  # nothing drawn outside the boxes


def test_shape_scenes_have_relation_captions_matching_the_boxes() -> None:
    for item in make_shape_scenes(30, size=48, seed=3):
        assert item.image.shape == (3, 48, 48)
        assert len(item.captions) == (3 if len(item.objects) == 1 else 4)
        centres = [(o.box[0] + o.box[2]) / 2 for o in item.objects]
        assert centres == sorted(centres)
        first = item.captions[0].split(" left of ")
        assert len(first) == len(item.objects)
        assert [phrase.split()[-1] for phrase in first] == [o.name for o in item.objects]
        mirrored = item.captions[1].split(" right of ") if len(item.objects) > 1 else first
        assert [p.split()[-1] for p in mirrored] == [o.name for o in item.objects][
            :: 1 if len(first) == 1 else -1
        ]


def test_vocab_min_count_unk_and_round_trip(tmp_path: Path) -> None:
    vocab = CaptionVocab.build(["A red disc.", "a red square", "a blue, disc"], min_count=2)
    assert vocab.words[4:] == ["a", "disc", "red"]
    ids = vocab.encode("A green disc")
    assert ids[2] == UNK_ID and ids[-1] == EOS_ID
    assert vocab.decode(ids) == ["a", "<unk>", "disc"]
    vocab.save(tmp_path / "vocab.txt")
    assert CaptionVocab.load(tmp_path / "vocab.txt").words == vocab.words
    assert tokenize("Two dogs' ball, 3rd!") == ["two", "dogs", "ball", "3rd"]
    with pytest.raises(InvalidInputError, match="id 99 is outside this vocabulary of 7 words"):
        vocab.decode([1, 99])
    (tmp_path / "latin1.txt").write_bytes("<pad>\n<bos>\n<eos>\n<unk>\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(FileFormatError, match=r"latin1.txt is not a vocabulary \(not UTF-8"):
        CaptionVocab.load(tmp_path / "latin1.txt")


def test_caption_words_keep_their_marks_and_decomposed_text_meets_the_same_vocabulary() -> None:
    """Python's re took Devanagari's vowel signs and viramas for punctuation ('हिन्दी भाषा' became
    five consonants) and an NFD 'café' became 'cafe', an unknown word to an NFC vocabulary."""
    import unicodedata

    assert tokenize("\u0939\u093f\u0928\u094d\u0926\u0940 \u092d\u093e\u0937\u093e") == [
        "\u0939\u093f\u0928\u094d\u0926\u0940", "\u092d\u093e\u0937\u093e"
    ]
    vocab = CaptionVocab.build(["un caf\u00e9 noir"])
    decomposed = unicodedata.normalize("NFD", "Un caf\u00e9 noir")
    assert vocab.encode(decomposed) == vocab.encode("un caf\u00e9 noir")
    assert UNK_ID not in vocab.encode(unicodedata.normalize("NFD", "caf\u00e9"))
    assert tokenize("snake_case x") == ["snake", "case", "x"]  # the underscore still splits
    numbers = ["\u00bd", "cup", "2\u00b2", "and", "\u2460"]  # a fraction, a superscript, a circled digit
    assert tokenize("\u00bd cup, 2\u00b2 and \u2460") == numbers


def test_captions_cut_to_a_length_keep_their_images_pixel_limit() -> None:
    from nlp182.captioning.data import CaptionedImage
    from nlp182.captioning.train import trainable

    captions = ["a red disc", "a very long caption of many words"]
    item = CaptionedImage(Path("big.png"), captions, max_pixels=50_000_000)
    (kept,), warnings = trainable([item], max_words=4)
    assert kept.captions == ["a red disc"] and kept.max_pixels == 50_000_000
    long_only = CaptionedImage(Path("long.png"), captions[1:])
    kept, warnings = trainable([item, long_only], max_words=4)
    assert len(kept) == 1 and warnings == [  # what was left out is said, not silently dropped
        "2 of 3 training captions are longer than max_caption_len=4 words and are left out, and with "
        "them 1 image with no shorter caption; raise --max-caption-len to train on them"
    ]
    assert trainable([long_only], max_words=10) == ([long_only], [])


def test_karpathy_reader_splits_and_loads_like_inference(karpathy: Path) -> None:
    splits = read_karpathy(karpathy, karpathy.parent / "images")
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [2, 1, 1]
    item = splits["train"][0]
    assert item.captions == ["a red square", "a red box"]
    pixels = item.pixels(16)
    torch.testing.assert_close(pixels, load_image(karpathy.parent / "images" / "red.png", 16))
    assert pixels.shape == (3, 16, 16) and float(pixels.min()) >= 0.0 and float(pixels.max()) <= 1.0
    assert float(pixels[0, 8, 8]) == pytest.approx(220 / 255, abs=0.02)


def test_karpathy_entry_without_split_trains_and_tokens_stand_in_for_raw(karpathy: Path) -> None:
    """An image with no "split" is a training image, and a sentence with only "tokens" is read as
    those tokens joined by spaces (some exports of dataset.json drop "raw")."""
    document = json.loads(karpathy.read_text())
    del document["images"][3]["split"]
    document["images"][3]["sentences"] = [{"tokens": ["a", "dark", "red", "square"]}]
    karpathy.write_text(json.dumps(document))
    splits = read_karpathy(karpathy, karpathy.parent / "images")
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [3, 1, 0]
    assert splits["train"][-1].name == "red2.png"
    assert splits["train"][-1].captions == ["a dark red square"]


def test_tsv_header_is_read_in_any_case_and_no_test_split_is_cut_unless_asked(tsv: Path) -> None:
    """``Image<TAB>Caption`` is a header, not an image named "Image"; a test fraction of 0 leaves
    the test split empty (only valid gets its one-image minimum)."""
    lines = tsv.read_text().splitlines()
    tsv.write_text("\n".join(["Image\tCaption", *lines[1:]]) + "\n")
    items = read_tsv(tsv)
    assert [i.name for i in items] == ["red.png", "blue.png", "green.png", "red2.png"]
    splits = split_images(items, 0.1, 0.0, seed=0)
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [3, 1, 0]


def test_tsv_reader_groups_lines_per_image_and_splits_by_image(tsv: Path) -> None:
    items = read_tsv(tsv)
    assert [i.name for i in items] == ["red.png", "blue.png", "green.png", "red2.png"]
    assert items[1].captions == ["a blue square", "a blue box"]
    splits = split_images(items, 0.25, 0.25, seed=1)
    names = [i.name for s in splits.values() for i in s]
    assert sorted(names) == sorted(i.name for i in items) and len(splits["test"]) == 1


def _error(call) -> str:
    with pytest.raises((FileFormatError, MissingFileError)) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_tsv_lines_name_file_and_line(tsv: Path) -> None:
    lines = tsv.read_text().splitlines()
    tsv.write_text("\n".join([*lines[:3], "missing.png\ta caption", *lines[3:]]) + "\n")
    assert f"{tsv} line 4" in _error(lambda: read_tsv(tsv)) and "missing.png" in _error(lambda: read_tsv(tsv))
    tsv.write_text("red.png\t  .. \n")
    assert f"{tsv} line 1: empty caption" in _error(lambda: read_tsv(tsv))
    tsv.write_text("red.png\n")
    assert f"{tsv} line 1" in _error(lambda: read_tsv(tsv))
    (tsv.parent / "broken.png").write_bytes(b"not an image")
    tsv.write_text("red.png\tok\nbroken.png\ta caption\n")
    assert f"{tsv} line 2" in _error(lambda: read_tsv(tsv)) and "cannot be read" in _error(
        lambda: read_tsv(tsv)
    )


def test_bad_karpathy_files_name_file_and_line(karpathy: Path) -> None:
    images = karpathy.parent / "images"
    document = json.loads(karpathy.read_text())
    document["images"][2]["sentences"][0]["raw"] = "  "
    karpathy.write_text(json.dumps(document, indent=1))
    line = karpathy.read_text().splitlines().index('   "filename": "green.png",') + 1
    assert f"{karpathy} line {line}" in _error(lambda: read_karpathy(karpathy, images))
    assert "empty caption" in _error(lambda: read_karpathy(karpathy, images))
    karpathy.write_text(json.dumps({"annotations": []}))
    assert "not a Karpathy-split caption file" in _error(lambda: read_karpathy(karpathy, images))
    karpathy.write_text('{"images": [\n  {"filename": "red.png",,}]}')
    assert f"{karpathy} line 2" in _error(lambda: read_karpathy(karpathy, images))
    document["images"][2]["sentences"][0]["raw"] = "fine"
    (images / "blue.png").unlink()
    karpathy.write_text(json.dumps(document, indent=1))
    assert "blue.png does not exist" in _error(lambda: read_karpathy(karpathy, images))


def test_a_caption_file_errors_at_the_line_that_holds_the_fault(karpathy: Path, tsv: Path) -> None:
    """A Latin-1 byte on line 4 was reported at line 1; a JSON file naming ``café.png`` as it is
    (``ensure_ascii=False``) put errors at the previous entry's line; a split given as a list
    raised a raw TypeError."""
    lines = tsv.read_bytes().split(b"\n")
    lines[3] = lines[3] + b" caf\xe9"
    tsv.write_bytes(b"\n".join(lines))
    assert f"{tsv} line 4: not UTF-8 text" in _error(lambda: read_tsv(tsv))
    images = karpathy.parent / "images"
    (images / "red.png").rename(images / "café.png")
    document = json.loads(karpathy.read_text())
    document["images"][0]["filename"] = "café.png"
    document["images"][2]["sentences"][0]["raw"] = "  "
    karpathy.write_text(json.dumps(document, indent=1, ensure_ascii=False), encoding="utf-8")
    line = karpathy.read_text(encoding="utf-8").splitlines().index('   "filename": "green.png",') + 1
    assert f"{karpathy} line {line} (images[2], green.png): sentence 0 is an empty caption" in _error(
        lambda: read_karpathy(karpathy, images)
    )
    document["images"][2]["sentences"][0]["raw"] = "fine"
    document["images"][1]["split"] = ["train"]
    karpathy.write_text(json.dumps(document, indent=1, ensure_ascii=False), encoding="utf-8")
    assert "split ['train'] is not one of train" in _error(lambda: read_karpathy(karpathy, images))


def test_an_image_over_pillows_own_cap_says_so_when_the_setting_is_higher(tmp_path, monkeypatch) -> None:
    """Past twice ``Image.MAX_IMAGE_PIXELS`` Pillow refuses an image whatever ``--max-image-pixels``
    says: the message gave the setting as the limit while the image was under it."""
    from PIL import Image

    Image.fromarray(np.zeros((30, 30), dtype=np.uint8)).save(tmp_path / "scan.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(FileFormatError, match="is 900 pixels, over Pillow's own limit of 200 pixels"):
        load_image(tmp_path / "scan.png", 8, max_pixels=10_000)
    with pytest.raises(FileFormatError, match="over the limit of 150 "):
        load_image(tmp_path / "scan.png", 8, max_pixels=150)


def test_an_image_over_the_setting_is_named_as_such_and_8_bit_values_in_32_bit_mode_stay_bright(
    tmp_path: Path,
) -> None:
    """An image over ``max_pixels`` is refused with the size message itself (not as an unreadable
    image), and a 32-bit integer image whose values top out at 255 is scaled by 255, not 65535."""
    from PIL import Image

    Image.fromarray(np.zeros((30, 30), dtype=np.uint8)).save(tmp_path / "scan.png")
    message = _error(lambda: load_image(tmp_path / "scan.png", 8, max_pixels=150))
    assert message.startswith(f"image {tmp_path / 'scan.png'} is 30x30 = 900 pixels, over the limit of 150")
    assert "cannot be read" not in message
    grey = np.zeros((4, 4), dtype=np.int32)
    grey[:, 2:] = 255
    Image.fromarray(grey, "I").save(tmp_path / "grey.tif")
    pixels = load_image(tmp_path / "grey.tif", 4)
    assert float(pixels[:, :, 0].max()) == 0.0 and float(pixels[:, :, 3].min()) == 1.0


def test_a_training_image_is_decoded_once_however_many_captions_and_epochs(tsv: Path, monkeypatch) -> None:
    """Every caption of every epoch, and every validation, decoded the file again: 8 decodes an
    image in 2 epochs of 3 captions, minutes an epoch for phone photos."""
    from nlp182.captioning import data
    from nlp182.captioning.data import ResizedImages, image_batches, make_loader

    decoded: list[str] = []
    real = data.decode_image

    def counted(path, *rest):
        decoded.append(str(path))
        return real(path, *rest)

    monkeypatch.setattr(data, "decode_image", counted)
    monkeypatch.setattr(data, "RESIZED", ResizedImages())
    items = read_tsv(tsv)
    decoded.clear()  # the reader decodes each image in full once, to check it
    vocab = CaptionVocab.build([c for item in items for c in item.captions], min_count=1)
    loader = make_loader(items, vocab, 12, batch_size=2, shuffle=True)
    for _ in range(2):
        for batch in loader:
            assert batch.images.dtype == torch.float32
        image_batches(items, 12, 3)
    assert sorted(decoded) == sorted(str(item.image) for item in items)  # once each
    for item in items:  # the same floats as reading the file afresh
        torch.testing.assert_close(item.pixels(12), load_image(item.image, 12), rtol=0, atol=0)
    from PIL import Image

    Image.new("RGB", (5, 5), (0, 0, 255)).save(items[0].image)  # an edited file is read again
    assert float(items[0].pixels(12)[2].min()) == 1.0
    small = ResizedImages(budget=3 * 12 * 12 * 2)  # room for two images
    for item in items:
        small.get(item.image, 12, item.max_pixels)
    assert len(small) == 2 and small.held <= small.budget


def test_a_file_rewritten_at_the_same_size_is_decoded_again(tmp_path: Path) -> None:
    """The cache of resized images is keyed by modification time as well as size: a file replaced by
    another image of the same byte count is read afresh, not served from the cache."""
    from PIL import Image

    from nlp182.captioning.data import ResizedImages

    path = tmp_path / "swap.bmp"
    Image.new("RGB", (6, 6), (255, 0, 0)).save(path)
    cache = ResizedImages()
    assert float(cache.get(path, 4, 10_000)[0].min()) == 255
    size = path.stat().st_size
    Image.new("RGB", (6, 6), (0, 0, 255)).save(path)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert path.stat().st_size == size
    pixels = cache.get(path, 4, 10_000)
    assert float(pixels[2].min()) == 255 and float(pixels[0].max()) == 0


def test_load_image_always_gives_rgb_floats(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.full((7, 9), 255, dtype=np.uint8)).save(tmp_path / "grey.png")
    pixels = load_image(tmp_path / "grey.png", 12)
    assert pixels.shape == (3, 12, 12) and torch.allclose(pixels, torch.ones_like(pixels))


def test_a_bom_a_null_filepath_16_bit_images_and_no_train_image(karpathy: Path, tmp_path: Path) -> None:
    from PIL import Image

    from nlp182.captioning.config import CaptionConfig
    from nlp182.captioning.train import load_splits

    document = json.loads(karpathy.read_text())
    document["images"][0]["filepath"] = None  # as some exports write "no subfolder"
    karpathy.write_bytes(b"\xef\xbb\xbf" + json.dumps(document).encode())  # a Windows editor's BOM
    splits = read_karpathy(karpathy, karpathy.parent / "images")
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [2, 1, 1]
    levels = (np.arange(16 * 16).reshape(16, 16) % 256).astype(np.uint16)
    Image.fromarray(levels * 257).save(tmp_path / "deep.png")  # 16-bit grey: I;16
    Image.fromarray(levels.astype(np.uint8)).save(tmp_path / "flat.png")
    torch.testing.assert_close(load_image(tmp_path / "deep.png", 16), load_image(tmp_path / "flat.png", 16))
    Image.fromarray(levels).save(tmp_path / "dark.png")  # 16-bit, every level under 256: a dark scan
    assert Image.open(tmp_path / "dark.png").mode.startswith("I;16")
    assert float(load_image(tmp_path / "dark.png", 16).max()) < 1.01 / 255  # it was read 257 times brighter
    Image.fromarray(levels.astype(np.float32) / 255, "F").save(tmp_path / "float.tiff")  # 32-bit float grey
    torch.testing.assert_close(load_image(tmp_path / "float.tiff", 16), load_image(tmp_path / "flat.png", 16))
    for entry in document["images"]:
        entry["split"] = "test"
    karpathy.write_text(json.dumps(document))
    config = CaptionConfig(data=str(karpathy), images=str(karpathy.parent / "images"))
    with pytest.raises(InvalidInputError, match="no image is in the train"):
        load_splits(config)


def test_a_phone_photo_is_read_upright_by_its_exif_orientation(tmp_path: Path) -> None:
    """A portrait photo is stored sideways with EXIF Orientation 6; viewers turn it, and so must the
    captioner, or "a red bar above a blue bar" is learnt from a picture of bars side by side."""
    from PIL import Image

    upright = Image.new("RGB", (64, 64), (250, 250, 250))
    upright.paste((220, 30, 30), (8, 4, 56, 28))  # red at the top
    upright.paste((30, 60, 220), (8, 36, 56, 60))  # blue at the bottom
    upright.save(tmp_path / "upright.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    phone, plain = load_image(tmp_path / "phone.jpg", 16), load_image(tmp_path / "upright.png", 16)
    assert float((phone - plain).abs().max()) < 0.1
    assert phone[0, 1, 8] > 0.8 and phone[2, 1, 8] < 0.3  # red on top, as the photo is seen


def test_one_image_is_one_item_however_its_path_is_written(karpathy: Path, tsv: Path) -> None:
    """``img.png`` and ``./img.png`` were two images, which a seeded split could put in train and
    test; a Karpathy entry repeated under another split was accepted."""
    first, other = (line.split("\t") for line in tsv.read_text().splitlines()[1:3])
    assert first[0] == other[0]
    tsv.write_text(f"image\tcaption\n{first[0]}\t{first[1]}\n./{other[0]}\t{other[1]}\n")
    (item,) = read_tsv(tsv)
    assert item.captions == [first[1], other[1]]
    document = json.loads(karpathy.read_text())
    repeated = {**document["images"][0], "split": "test", "sentences": [{"raw": "a red thing"}]}
    karpathy.write_text(json.dumps({"images": [*document["images"], repeated]}))
    with pytest.raises(FileFormatError, match=r"in the test split and, at .* in the train split"):
        read_karpathy(karpathy, karpathy.parent / "images")
    repeated["split"] = "restval"  # the same split under another name: its captions join the first's
    karpathy.write_text(json.dumps({"images": [*document["images"], repeated]}))
    splits = read_karpathy(karpathy, karpathy.parent / "images")
    assert len(splits["train"]) == 2 and splits["train"][0].captions[-1] == "a red thing"
