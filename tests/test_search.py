import json

import numpy as np
import pytest
import torch

from aekit import create_model, fit
from aekit.cli import main
from aekit.data import resolve
from aekit.data.images import write_image


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two small digit models: 12-d dense codes and 24-bit binary codes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest on a busy machine
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("models")
    data = resolve("digits:train")
    out = {}
    for name, dim, extra in [("dense", 12, {}), ("binary", 24, {"code": "binary"})]:
        m = create_model("deep", (1, 8, 8), dim, arch_options={"hidden": [128]}, **extra)
        fit(m, data, epochs=15, progress=False, patience=None, val_fraction=0)
        m.save_pretrained(root / name)
        out[name] = root / name
    torch.set_num_threads(threads)
    return out


def run_json(capsys, *argv):
    code = main([*map(str, argv), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


@pytest.mark.parametrize("kind,bound", [("dense", 0.6), ("binary", 0.3)])
def test_search_on_digits_returns_same_class_far_above_chance(models, tmp_path, capsys, kind, bound):
    ix = tmp_path / "ix"
    built = run_json(capsys, "index", "digits:train", "--model", models[kind], "--out", ix)
    assert built["total"] == 1438 and built["metric"] == ("hamming" if kind == "binary" else "l2")
    res = run_json(capsys, "search", ix, "digits:test", "-k", 10)
    y_test = resolve("digits:test").labels()
    hits = [np.mean([r["label"] == y for r in q["results"]])
            for q, y in zip(res["queries"], y_test)]
    # chance is 0.1 (ten balanced classes); measured 0.83 dense, 0.40 binary (24 bits, 15 epochs)
    assert np.mean(hits) > bound


def test_add_then_search_finds_the_new_image(models, tmp_path, capsys):
    ix = tmp_path / "ix"
    run_json(capsys, "index", "digits:train", "--model", models["dense"], "--out", ix)
    new = tmp_path / "new"
    x = resolve("digits:test").all().numpy()
    for i in range(3):
        write_image(new / f"img{i}.png", x[i, 0])
    added = run_json(capsys, "index", new, "--add", "--out", ix)
    assert added["added"] == 3 and added["total"] == 1441
    res = run_json(capsys, "search", ix, new / "img1.png", "-k", 3)
    top = res["queries"][0]["results"][0]
    assert top["name"].endswith("img1.png") and top["distance"] < 1e-3
    html = tmp_path / "r.html"
    assert main(["search", str(ix), str(new), "-k", "4", "--html", str(html)]) == 0
    page = html.read_text()
    assert page.count("data:image/png;base64") == 3 * 5 and "http" not in page.split("<body>")[1]


def test_index_refuses_a_query_model_with_another_code_size(models, tmp_path, capsys):
    ix = tmp_path / "ix"
    run_json(capsys, "index", "digits:test", "--model", models["dense"], "--out", ix)
    assert main(["search", str(ix), "digits:test", "--model", str(models["binary"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aekit: error: ") and "24-d codes" in err and "12-d codes" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["index", "digits:test", "--model", str(models["dense"]), "--out", str(ix)]) == 2
    assert "--add" in capsys.readouterr().err


def test_index_refuses_another_model_with_the_same_code_size(models, tmp_path, capsys):
    # codes of two models (or of one model retrained in place) are not comparable
    ix, other = tmp_path / "ix", tmp_path / "other"
    run_json(capsys, "index", "digits:test", "--model", models["dense"], "--out", ix)
    torch.manual_seed(5)
    m = create_model("deep", (1, 8, 8), 12, arch_options={"hidden": [128]})
    fit(m, resolve("digits:train"), epochs=1, progress=False, val_fraction=0)
    m.save_pretrained(other)
    before = {f.name: f.read_bytes() for f in ix.iterdir()}
    assert main(["index", "digits:train", "--add", "--out", str(ix), "--model", str(other)]) == 2
    assert main(["search", str(ix), "digits:test", "--model", str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("not the model that made this index" in e for e in err)
    assert {f.name: f.read_bytes() for f in ix.iterdir()} == before  # nothing written
    # a folder of the user's other files is not an index folder: refused, not overwritten
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "codes.npy").write_bytes(b"the user's")
    assert main(["index", "digits:test", "--model", str(models["dense"]), "--out", str(mine)]) == 2
    assert (mine / "codes.npy").read_bytes() == b"the user's"


def test_exact_below_is_kept_as_given(models, tmp_path, capsys):
    ix = tmp_path / "ix"
    built = run_json(capsys, "index", "digits:test", "--model", models["dense"], "--out", ix,
                     "--exact-below", 0)  # 0 = always approximate (it was taken for 'not given')
    assert built["approximate"] and (ix / "ann_centroids.npy").is_file()
    added = run_json(capsys, "index", "digits:train", "--add", "--out", ix, "--exact-below", 5000)
    assert not added["approximate"] and added["total"] == 1797  # back to exact below 5000
    assert not (ix / "ann_centroids.npy").exists()  # staging keeps files: removed after it
    with pytest.raises(SystemExit) as e:  # argparse's own refusal (one line)
        main(["index", "digits:test", "--model", str(models["dense"]), "--out",
              str(tmp_path / "n"), "--exact-below", "-5"])
    assert e.value.code == 2 and "integer ≥ 0, got -5" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["[1, 2]", "{\"format\": \"other\"}", "{not json", ""])
def test_search_refuses_a_damaged_index_file_in_one_line(tmp_path, capsys, text):
    ix = tmp_path / "ix"
    ix.mkdir()
    (ix / "index.json").write_text(text)
    assert main(["search", str(ix), "digits:test"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aekit: error: ") and "index.json" in err
    assert len(err.strip().splitlines()) == 1


def test_a_tampered_index_folder_is_one_line(models, tmp_path, capsys):
    import shutil

    ix = tmp_path / "ix"
    run_json(capsys, "index", "digits:test", "--model", models["dense"], "--out", ix)
    for name, damage in (
            ("index.json", lambda t: json.dumps({k: v for k, v in json.loads(t).items()
                                                 if k != "metric"})),
            ("codes.json", lambda t: "[1, 2]")):
        bad = tmp_path / name
        shutil.copytree(ix, bad)
        (bad / name).write_text(damage((ix / name).read_text()))
        assert main(["search", str(bad), "digits:test"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("aekit: error: ") and len(err.strip().splitlines()) == 1, err
    # a 200-byte thumbnail file whose header claims hundreds of GiB: refused, not allocated
    bad = tmp_path / "thumbs"
    shutil.copytree(ix, bad)
    raw = (ix / "thumbs.npy").read_bytes()
    shape = str(np.load(ix / "thumbs.npy").shape).encode()
    huge = b"(400000, 1000, 1000, 1)"
    header_len = raw.index(b"\n") + 1
    header = raw[:header_len].replace(shape, huge)
    header = header[:-1].rstrip(b" ") + b" " * (header_len - len(header[:-1].rstrip(b" ")) - 1) + b"\n"
    (bad / "thumbs.npy").write_bytes(header + raw[header_len:header_len + 100])
    assert main(["search", str(bad), "digits:test"]) == 2
    assert "not a valid .npy file" in capsys.readouterr().err


def test_explore_writes_a_self_contained_page(models, tmp_path, capsys):
    ix = tmp_path / "ix"
    run_json(capsys, "index", "digits:test", "--model", models["binary"], "--out", ix)
    out = run_json(capsys, "explore", ix, "--out", tmp_path / "e.html", "--max-points", 100)
    assert out["points"] == 100 and out["map"] in ("PCA", "UMAP")
    page = (tmp_path / "e.html").read_text()
    assert "<script src" not in page and "aekit-data" in page


def test_names_cannot_break_the_page_script(models, tmp_path, capsys):
    from aekit.explorer import _json_for_script

    text = _json_for_script({"name": "<!--<script></script>"})
    assert "<" not in text and json.loads(text) == {"name": "<!--<script></script>"}
    # and a map of one code is one line, not a scikit-learn traceback
    np.save(tmp_path / "one.npy", np.zeros((1, 4), np.float32))
    assert main(["explore", str(tmp_path / "one.npy"), "--out", str(tmp_path / "e.html")]) == 2
    assert "at least 2" in capsys.readouterr().err


def test_add_leaves_out_items_already_indexed_and_html_must_be_a_page(models, tmp_path, capsys):
    ix, new = tmp_path / "ix", tmp_path / "new"
    x = resolve("digits:test").all().numpy()
    for i in range(3):
        write_image(new / f"img{i}.png", x[i, 0])
    run_json(capsys, "index", new, "--model", models["dense"], "--out", ix)
    write_image(new / "img3.png", x[3, 0])
    added = run_json(capsys, "index", new, "--add", "--out", ix)
    assert (added["added"], added["skipped"], added["total"]) == (1, 3, 4)
    assert main(["index", str(new), "--add", "--out", str(ix)]) == 2
    assert "nothing to add" in capsys.readouterr().err
    # the same files typed another way are the same items; other files of the same names not
    import os

    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert main(["index", "new", "--add", "--out", str(ix)]) == 2  # relative: same files
        capsys.readouterr()
        other = tmp_path / "other" / "new"
        for i in range(2):
            write_image(other / f"img{i}.png", x[10 + i, 0])
        os.chdir(tmp_path / "other")
        added = run_json(capsys, "index", "new", "--add", "--out", ix)
        assert (added["added"], added["skipped"]) == (2, 0)  # same names, different files
    finally:
        os.chdir(cwd)
    res = run_json(capsys, "search", ix, new / "img1.png", "-k", 10)
    names = [r["name"] for r in res["queries"][0]["results"]]
    assert len(names) == 6 and res["k"] == 6  # k as returned, not as asked
    keep = tmp_path / "keep.json"
    keep.write_text("{}")
    assert main(["search", str(ix), str(new / "img1.png"), "--html", str(keep)]) == 2
    assert "must end in .html" in capsys.readouterr().err and keep.read_text() == "{}"


def test_add_to_an_index_written_by_an_older_aekit(models, tmp_path, capsys):
    """Its items have no "path" (compared by name and what the name resolves to), and an
    ann.faiss, which is never read and goes at the next write."""
    ix, new = tmp_path / "ix", tmp_path / "new"
    x = resolve("digits:test").all().numpy()
    for i in range(3):
        write_image(new / f"img{i}.png", x[i, 0])
    run_json(capsys, "index", new, "--model", models["dense"], "--out", ix)
    meta = json.loads((ix / "index.json").read_text())
    for it in meta["items"]:
        it.pop("path")
    (ix / "index.json").write_text(json.dumps(meta))
    (ix / "ann.faiss").write_bytes(b"IwFl" + b"\xff" * 32)
    assert main(["index", str(new), "--add", "--out", str(ix)]) == 2
    assert "nothing to add" in capsys.readouterr().err
    write_image(new / "img3.png", x[3, 0])
    added = run_json(capsys, "index", new, "--add", "--out", ix)
    assert (added["added"], added["skipped"], added["total"]) == (1, 3, 4)
    assert not (ix / "ann.faiss").exists()


def test_damaged_items_labels_and_one_point_maps_are_refused_in_one_line(models, tmp_path, capsys):
    ix = tmp_path / "ix"
    run_json(capsys, "index", "digits:test", "--model", models["dense"], "--out", ix)
    codes = tmp_path / "codes.npz"
    np.savez(codes, x=np.zeros((5, 3), np.float32), y=np.arange(3))
    meta = json.loads((ix / "index.json").read_text())
    meta["items"][0] = 5
    (ix / "index.json").write_text(json.dumps(meta))
    for argv in (["search", str(ix), "digits:test"],
                 ["explore", str(codes), "--out", str(tmp_path / "e.html")],
                 ["explore", str(codes), "--out", str(tmp_path / "e.html"), "--max-points", "1"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("aekit: error: ") and len(err.strip().splitlines()) == 1, err


def test_explore_refuses_non_finite_codes_and_takes_many_points(tmp_path, capsys):
    """NaN codes were an internal error; the page's bounds used Math.min(...xs), which
    overflows the browser's call stack above ~125,000 points (a blank map)."""
    from aekit.explorer import _SCRIPT

    codes = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    codes[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", codes)
    assert main(["explore", str(tmp_path / "nan.npy"), "--out", str(tmp_path / "n.html")]) == 2
    err = capsys.readouterr().err
    assert "code 3 (counting from 0) has NaN" in err and len(err.strip().splitlines()) == 1
    assert "Math.min(..." not in _SCRIPT and "Math.max(..." not in _SCRIPT
    np.save(tmp_path / "same.npy", np.ones((30, 4), np.float32))  # k-means on duplicates
    assert main(["explore", str(tmp_path / "same.npy"), "--out", str(tmp_path / "s.HTML")]) == 0
    assert "Warning" not in capsys.readouterr().err
