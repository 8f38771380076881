"""check.py: the bad-file corpus and layout warnings of `check_folder`, and `quick_check`."""

from pathlib import Path

from keras_resnet.data.check import check_folder, quick_check


def test_bad_file_corpus_reported_by_path(folder, corpus):
    bad = corpus.write_bad_files(folder / "train" / "b")
    report = check_folder(folder)
    errors = {issue.path: issue.message for issue in report.errors}
    assert set(errors) == {str(p) for p in bad.values()}
    assert "0 bytes" in errors[str(bad["empty"])]
    assert "not a JPEG" in errors[str(bad["text"])]
    assert "cannot decode" in errors[str(bad["truncated"])]
    assert not report.ok
    assert report.splits["train"] == {"a": 6, "b": 6, "c": 6}
    text = report.format()
    assert str(bad["truncated"]) in text and "3 error(s)" in text


def test_quick_check_agrees_on_the_corpus(tmp_path, corpus):
    bad = corpus.write_bad_files(tmp_path / "x")
    good = corpus.write_image(tmp_path / "x" / "good.jpg", (1, 2, 3), fmt="JPEG")
    assert quick_check(good) is None
    assert all(quick_check(p) for p in bad.values())


def test_layout_warnings_and_errors(tmp_path, corpus):
    root = corpus.write_folder(tmp_path / "ds", {"train": {"a": 2, "b": 2, "c": 1}, "test": {"a": 1, "z": 1}})
    (root / "train" / "empty").mkdir()
    corpus.write_image(root / "train" / "a" / "big.png", (5, 5, 5), size=200)
    report = check_folder(root, image_size=32)
    warnings = " | ".join(i.format() for i in report.warnings)
    assert "empty: empty class folder (no images); training drops this class" in warnings
    assert "classes in train but not in test: ['b', 'c']" in warnings
    assert "big.png" in warnings and "4x the model input" in warnings
    errors = " | ".join(i.format() for i in report.errors)
    assert "classes in test but not in train: ['z']" in errors  # training refuses it: an error here too
    assert not report.ok


def test_one_usable_class_is_an_error_like_in_training(tmp_path, corpus):
    """Two class folders, one of them all unreadable: data check and training agree there is one class."""
    import pytest

    from keras_resnet.data.sources import folder_source

    root = corpus.write_folder(tmp_path / "ds", {"train": {"a": 3}})
    (root / "train" / "b").mkdir()
    (root / "train" / "b" / "x.jpg").write_text("not an image")
    report = check_folder(root)
    issues = {(i.severity, Path(i.path).name): i.message for i in report.issues}
    assert "no usable image (all 1 files above are unusable); training drops this class" in issues[("warning", "b")]
    assert "classes with usable images: only one (a); a classifier needs two or more" in issues[("error", "train")]
    with pytest.raises(ValueError, match="only one class"):
        folder_source(root)


def test_non_utf8_file_name_is_reported_escaped_by_check_and_skipped_by_training(tmp_path, corpus):
    from hostile_files import png_bytes, write_non_utf8_name

    from keras_resnet.data.sources import folder_source

    root = corpus.write_folder(tmp_path / "ds", {"train": {"a": 2, "b": 2}})
    odd = write_non_utf8_name(root / "train" / "a", png_bytes())
    report = check_folder(root)
    assert [(i.path, i.message) for i in report.errors] == [(odd, "file name is not valid UTF-8 (rename the file to use it)")]
    text = report.format()
    assert "bad\\xff\\xfe.png" in text and text.encode("utf-8")  # printable: no lone surrogates left
    source = folder_source(root)
    assert source.bad_files == [(odd, "file name is not valid UTF-8 (rename the file to use it)")]
    assert report.splits["train"] == {"a": 2, "b": 2} == {"a": int((source.splits["train"].labels == 0).sum()), "b": 2}


def test_control_characters_in_names_are_escaped_in_the_report(tmp_path, corpus):
    root = corpus.write_folder(tmp_path / "ds", {"train": {"a": 2, "b": 2}})
    (root / "train" / "a" / "evil\x1b[2J\rname.jpg").write_text("junk")
    text = check_folder(root).format()
    assert "\x1b" not in text and "\r" not in text
    assert "evil\\x1b[2J\\rname.jpg" in text


def test_decode_errors_are_short_and_libjpeg_lines_do_not_leak(tmp_path, corpus, capfd):
    bad = corpus.write_bad_files(tmp_path / "x")
    reason = quick_check(bad["truncated"])
    assert reason.startswith("cannot decode (jpeg::Uncompress failed. Invalid JPEG data or crop window. (")
    assert "Improper call to JPEG library" in reason  # libjpeg's own line, attached to the file
    assert "JPEG library" not in capfd.readouterr().err  # libjpeg's line is in the reason, not loose on stderr
    report = check_folder(tmp_path)  # tmp_path/x is one class folder of the bad files
    text = report.format()
    assert "function_node" not in text and "[Op:" not in text and "truncated.jpg: cannot decode (jpeg::" in text
    assert "JPEG library" not in capfd.readouterr().err


def test_clean_folder_is_ok(folder):
    report = check_folder(folder, image_size=8)
    assert report.ok and not report.issues
