"""The data resolver: embedded sets, real file formats written by the tests, splits, checks."""

import gzip
import struct

import numpy as np
import pytest
from PIL import Image

from aekit.data import resolve
from aekit.data.images import list_images, write_image
from aekit.data.standard import read_cifar_binary, read_idx
from aekit.errors import DataError


def write_idx(path, arr, gz=False):
    codes = {np.uint8: 0x08, np.int32: 0x0C, np.float32: 0x0D}
    head = bytes([0, 0, codes[arr.dtype.type], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    body = arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(head + body)


def test_embedded_sets():
    d = resolve("digits")
    assert len(d) == 1797 and d.input_shape == (1, 8, 8) and d.labels() is not None
    x = d.all()
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    assert resolve("digits28").input_shape == (1, 28, 28)
    f = resolve("faces")
    assert len(f) == 200 and f.input_shape == (1, 25, 25) and set(f.labels()) == {0, 1}
    p = resolve("patches?size=12&n=50&channels=3&seed=1")
    assert len(p) == 50 and p.input_shape == (3, 12, 12)
    assert np.array_equal(p.all().numpy(), resolve("patches?size=12&n=50&channels=3&seed=1").all().numpy())


def test_splits_are_disjoint_and_cover():
    tr, te = resolve("digits:train"), resolve("digits:test")
    assert len(tr) + len(te) == 1797
    assert not set(tr.index) & set(te.index)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_mnist_layout(tmp_path, monkeypatch, gz):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 20).astype(np.uint8)
    root = tmp_path / "mnist"
    root.mkdir()
    sfx = ".gz" if gz else ""
    write_idx(root / f"train-images-idx3-ubyte{sfx}", x, gz)
    write_idx(root / f"train-labels-idx1-ubyte{sfx}", y, gz)
    write_idx(root / f"t10k-images-idx3-ubyte{sfx}", x[:5], gz)
    write_idx(root / f"t10k-labels-idx1-ubyte{sfx}", y[:5], gz)
    monkeypatch.setenv("AEKIT_DATA", str(tmp_path))
    d = resolve("mnist")
    assert len(d) == 20 and d.input_shape == (1, 28, 28)
    np.testing.assert_allclose(d.all().numpy()[:, 0], x / 255, atol=1e-6)
    np.testing.assert_array_equal(d.labels(), y)
    assert len(resolve("mnist:test")) == 5
    assert read_idx(root / f"train-images-idx3-ubyte{sfx}").dtype == np.uint8
    both = resolve("mnist:all")  # train + test (it read the test set alone)
    assert len(both) == 25 and np.array_equal(both.labels(), np.concatenate([y, y[:5]]))
    write_idx(root / f"t10k-labels-idx1-ubyte{sfx}", x[:5], gz)  # images where labels go
    with pytest.raises(DataError, match="are the files swapped"):
        resolve("mnist:test")


def test_idx_rejects_bad_magic_and_truncation(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(DataError, match="not an IDX"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "ok", np.zeros((4, 3, 3), np.uint8))
    raw = (tmp_path / "ok").read_bytes()
    (tmp_path / "short").write_bytes(raw[:-5])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "short")


def test_cifar_binary(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar10" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    recs = {}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rec = rng.integers(0, 256, (3, 3073), dtype=np.uint8)
        rec[:, 0] %= 10
        rec.tofile(folder / name)
        recs[name] = rec
    monkeypatch.setenv("AEKIT_DATA", str(tmp_path))
    d = resolve("cifar10")
    assert len(d) == 15 and d.input_shape == (3, 32, 32)
    first = recs["data_batch_1.bin"][0]
    np.testing.assert_allclose(d.batch([0]).numpy()[0], first[1:].reshape(3, 32, 32) / 255, atol=1e-6)
    assert d.labels()[0] == first[0]
    assert len(resolve("cifar10:test")) == 3
    (folder / "junk.bin").write_bytes(b"123")
    with pytest.raises(DataError, match="not a CIFAR-10"):
        read_cifar_binary([folder / "junk.bin"])


def test_missing_standard_set_says_where(tmp_path, monkeypatch):
    import urllib.request

    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setenv("AEKIT_DATA", str(tmp_path))
    with pytest.raises(DataError) as e:
        resolve("fashion-mnist")
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and str(tmp_path) in msg and "\n" not in msg


def test_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "sub").mkdir()
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 256, (30, 30), dtype=np.uint8)).save(tmp_path / "sub" / "b.jpg")
    (tmp_path / "notes.txt").write_text("ignored")
    d = resolve(str(tmp_path), image_size=(16, 16), channels=3)
    assert len(d) == 2 and d.input_shape == (3, 16, 16)
    g = resolve(str(tmp_path), image_size=(8, 12), channels=1)
    assert g.input_shape == (1, 8, 12)
    assert d.labels() is None  # a.png sits at the top: not a folder of class folders


@pytest.mark.parametrize("stream", ["", "?stream=1"])
def test_a_folder_of_class_folders_is_labelled_by_them(tmp_path, stream):
    rng = np.random.default_rng(0)
    for cls, n in (("dogs", 2), ("cats", 3)):
        (tmp_path / cls).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(
                tmp_path / cls / f"{i}.png")
    d = resolve(str(tmp_path) + stream, image_size=(8, 8))
    files = list_images(tmp_path)
    assert list(d.labels()) == [f.parent.name for f in files] == ["cats"] * 3 + ["dogs"] * 2
    train = resolve(str(tmp_path) + ":train", image_size=(8, 8))
    assert set(train.labels()) <= {"cats", "dogs"} and len(train.labels()) == len(train)


def test_single_image_file_fits_like_a_folder(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "d").mkdir()
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(tmp_path / "d" / "a.png")
    whole = resolve(str(tmp_path / "d" / "a.png"))
    assert whole.input_shape == (3, 40, 60)  # no size asked: the file at its full size
    one = resolve(str(tmp_path / "d" / "a.png"), image_size=(16, 24), channels=1)
    assert one.input_shape == (1, 16, 24)
    folder = resolve(str(tmp_path / "d"), image_size=(16, 24), channels=1)
    np.testing.assert_array_equal(one.x, folder.x)  # the same pixels as inside a folder


def test_npz_csv_and_memmap(tmp_path):
    x = np.random.rand(30, 5).astype(np.float32)
    y = np.arange(30) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y)
    d = resolve(str(tmp_path / "d.npz"))
    assert d.input_shape == (5,) and list(d.labels()) == list(y)
    header = "a,b,label,c,d,e\n"
    rows = "\n".join(",".join(map(str, [*r[:2], lab, *r[2:]])) for r, lab in zip(x, y))
    (tmp_path / "d.csv").write_text(header + rows + "\n")
    c = resolve(str(tmp_path / "d.csv"))
    np.testing.assert_allclose(c.all().numpy(), x, rtol=1e-5)
    assert list(c.labels()) == list(y)
    np.save(tmp_path / "m.npy", (x * 255).astype(np.uint8).reshape(30, 5, 1))
    m = resolve(str(tmp_path / "m.npy"))
    assert isinstance(m.x, np.memmap) and m.input_shape == (1, 5, 1)


def test_crafted_idx_complex_npz_and_impossible_patches_are_one_error(tmp_path):
    (tmp_path / "huge").write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", *[2**31] * 3))
    with pytest.raises(DataError, match="truncated"):  # (np.prod wrapped around in int64)
        read_idx(tmp_path / "huge")
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + bytes(40))[:-12]
                                      + bytes(12))
    with pytest.raises(DataError, match="cannot read IDX"):
        read_idx(tmp_path / "bad.gz")
    np.savez(tmp_path / "c.npz", x=np.ones((40, 4), np.complex64))
    with pytest.raises(DataError, match="real numbers"):  # (the imaginary part was dropped)
        resolve(str(tmp_path / "c.npz"))
    for spec, needle in (("patches?size=4096&n=10", "larger than every shipped photo"),
                         ("patches?seed=-1", "seed ≥ 0"),
                         ("patches?size=512&n=1000000", "GiB")):
        with pytest.raises(DataError, match=needle):
            resolve(spec)
    (tmp_path / "semi.csv").write_text("a;b;c\n0;1;2\n")
    with pytest.raises(DataError, match="separated by ';'"):
        resolve(str(tmp_path / "semi.csv"))


def test_non_numeric_and_pickled_npy_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "words.npy", np.array([["a", "b"], ["c", "d"]]))
    for name in ("obj.npy", "words.npy"):  # pickled objects; strings
        with pytest.raises(DataError, match="not a valid .npy file of numbers"):
            resolve(str(tmp_path / name))
    (tmp_path / "t.csv").write_text("a,b\n1,x\n")
    with pytest.raises(DataError, match="line 2, column 'b' holds 'x'") as e:  # where, not only what
        resolve(str(tmp_path / "t.csv"))
    assert "name it with --label-col b" in str(e.value)  # a text column is likely the labels
    (tmp_path / "notes.txt").write_text("meeting notes, not a table\n")
    with pytest.raises(DataError, match="is it a table"):
        resolve(str(tmp_path / "notes.txt"))
    np.save(tmp_path / "one.npy", np.arange(5.0))
    with pytest.raises(DataError, match="shape"):
        resolve(str(tmp_path / "one.npy"))


def test_tables_are_read_as_their_authors_wrote_them(tmp_path):
    """Each of these was read wrongly without a word: a UTF-8 byte-order mark hid the label
    column (trained on as a feature), a blank cell in the first row made that row a 'header'
    (one sample lost), a .tsv was split on commas, a float64 beyond float32 became inf."""
    rows = "\n".join(f"{i % 2},{i}.5,{i * 2}" for i in range(6))
    (tmp_path / "bom.csv").write_text("label,a,b\n" + rows + "\n", encoding="utf-8-sig")
    d = resolve(str(tmp_path / "bom.csv"))
    assert d.input_shape == (2,) and list(d.labels()) == [0, 1] * 3
    (tmp_path / "gap.csv").write_text("1.0,,2.0\n" + "\n".join("1,2,3" for _ in range(5)))
    with pytest.raises(DataError, match="line 1, column 2 is empty"):
        resolve(str(tmp_path / "gap.csv"))
    with pytest.raises(DataError, match="no header row"):
        resolve(str(tmp_path / "gap.csv"), label_col="label")
    (tmp_path / "t.tsv").write_text("a\tb\n" + "\n".join(f"{i}\t{i + 1}" for i in range(4)))
    (tmp_path / "s.txt").write_text("\n".join(f"{i};{i + 1};{i + 2}" for i in range(4)))
    assert resolve(str(tmp_path / "t.tsv")).input_shape == (2,)
    assert resolve(str(tmp_path / "s.txt")).input_shape == (3,)
    big = np.ones((4, 3))
    big[2, 1] = 1e300
    np.save(tmp_path / "big.npy", big)
    with pytest.raises(DataError, match="sample 2 .* beyond float32's range"):
        resolve(str(tmp_path / "big.npy"))


def test_file_names_options_alpha_and_hidden_files(tmp_path):
    np.save(tmp_path / "q?.npy", np.ones((3, 2)))  # a "?" in the name is not an option
    assert resolve(str(tmp_path / "q?.npy")).input_shape == (2,)
    np.save(tmp_path / "t.npy", np.ones((3, 2)))
    with pytest.raises(DataError, match="unknown option foo"):  # (was ignored)
        resolve(str(tmp_path / "t.npy") + "?foo=1")
    rgba = np.random.default_rng(0).random((12, 10, 4)).astype(np.float32)
    write_image(tmp_path / "one.png", rgba)
    d = resolve(str(tmp_path / "one.png"))  # alpha is not content: 3 channels, as a folder gives
    assert d.input_shape == (3, 12, 10)
    folder = tmp_path / "photos"
    write_image(folder / "a.png", rgba[..., :3])
    (folder / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble resource fork")
    write_image(folder / ".thumbs" / "t.png", rgba[..., :3])
    assert [p.name for p in list_images(folder)] == ["a.png"]


def test_csv_label_columns_any_case_trailing_delimiters_and_space_aligned_txt(tmp_path):
    """A 'Class' column (Kaggle's fraud set) stayed a feature: the model trained on the
    answer. A trailing comma on every line, or a header as wide as the rows minus one, was a
    raw IndexError; a .txt aligned by runs of spaces (the UCR archive's, ECG5000's) was read
    as one cell per line."""
    (tmp_path / "k.csv").write_text("V1,V2,Amount,Class\n1,2,3,0\n4,5,6,1\n7,8,9,0\n")
    d = resolve(str(tmp_path / "k.csv"))
    assert d.input_shape == (3,) and list(d.labels()) == [0, 1, 0]
    (tmp_path / "t.csv").write_text("a,b,label\n1,2,x,\n3,4,y,\n")
    d = resolve(str(tmp_path / "t.csv"))
    assert d.input_shape == (2,) and list(d.labels()) == ["x", "y"]
    (tmp_path / "h.csv").write_text("a,b,c\n1,2\n3,4\n")
    with pytest.raises(DataError, match="the header has 3 columns but the rows 2"):
        resolve(str(tmp_path / "h.csv"))
    (tmp_path / "u.txt").write_text("  1.0e+00  -2.5e-01   3.0e+00\n  2.0e+00   1.5e-01  -1.0e+00\n")
    d = resolve(str(tmp_path / "u.txt"))
    np.testing.assert_allclose(d.x, [[1, -0.25, 3], [2, 0.15, -1]])
