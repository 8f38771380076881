"""textsafe.py: text from outside made safe for a terminal (`printable`) and a spreadsheet (`safe_cell`)."""

import os
from pathlib import Path

from keras_resnet.textsafe import printable, safe_cell


def test_printable_escapes_control_characters_and_keeps_other_text():
    assert printable("cat.jpg") == "cat.jpg"
    assert printable("über 猫 😀 a b.png") == "über 猫 😀 a b.png"
    assert printable("a\x1b[2Jb\rc\nd\te\x07\x7f\x85") == "a\\x1b[2Jb\\rc\\nd\\te\\x07\\x7f\\x85"
    assert printable("abc\u202egpj.exe") == "abc\\u202egpj.exe"  # a bidi override would show "exe.jpg"
    assert printable(Path("dir") / "x\x1b.png") == "dir/x\\x1b.png"


def test_printable_shows_the_bytes_of_a_name_that_is_not_utf8():
    name = os.fsdecode(b"bad\xff\xfe.png")  # what os.listdir gives: lone surrogates
    assert printable(name) == "bad\\xff\\xfe.png" == printable(b"bad\xff\xfe.png")
    printable(name).encode("utf-8")  # now printable: no UnicodeEncodeError


def test_safe_cell_neutralises_formula_starts():
    assert [safe_cell(v) for v in ("=1+1", "+x", "-2", "@SUM(A1)", "\tx", "\rx", "cat", "", None, 3)] == [
        "'=1+1", "'+x", "'-2", "'@SUM(A1)", "'\tx", "'\rx", "cat", "", "", "3"]


def test_one_definition_shared_with_top_losses():
    from keras_resnet.train import top_losses

    assert top_losses.safe_cell is safe_cell
