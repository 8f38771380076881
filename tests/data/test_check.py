"""check.py: the bad-file corpus and layout warnings of `check_folder`, and `quick_check`."""

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


def test_layout_warnings(tmp_path, corpus):
    root = corpus.write_folder(tmp_path / "ds", {"train": {"a": 2}, "test": {"a": 1, "z": 1}})
    (root / "train" / "empty").mkdir()
    corpus.write_image(root / "train" / "a" / "big.png", (5, 5, 5), size=200)
    report = check_folder(root, image_size=32)
    messages = " | ".join(i.format() for i in report.warnings)
    assert "empty class folder" in messages
    assert "only one class" in messages
    assert "classes in test but not in train: ['z']" in messages
    assert "big.png" in messages and "4x the model input" in messages
    assert report.ok  # warnings only


def test_clean_folder_is_ok(folder):
    report = check_folder(folder, image_size=8)
    assert report.ok and not report.issues
