"""Datasets: the mirror path rebuilds what torchvision reads, bad files stop with their name and
checksum, and nothing half-made is left looking complete."""

import hashlib
import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import env_with_bin
from maml_convergence import data

MIRROR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_mirror = pytest.mark.skipif(not (MIRROR / "omniglot").is_dir(), reason="no local dataset mirror")


@pytest.fixture(scope="module")
def omniglot(tmp_path_factory):
    """Omniglot from the mirror, fetched and prepared once as the workflow's data step does it: the folder
    torchvision reads, the prepared arrays, the data root and the record of the preparation."""
    root = tmp_path_factory.mktemp("omniglot")
    record = data.ensure_prepared("omniglot", root, MIRROR)
    return root / "omniglot", data.load_prepared(data.prepared_path(root, "omniglot")), root, record


@pytest.mark.slow
@needs_mirror
def test_mirror_rebuilds_the_layout_torchvision_reads(omniglot):
    root = omniglot[0]
    layout = root / "omniglot-py"
    assert (layout / "images_background/Arcadian/character01/0001_01.png").is_file()
    assert (layout / "images_evaluation/Angelic/character01/0965_01.png").is_file()
    assert sum(1 for _ in layout.rglob("*.png")) == 1623 * 20
    background = data.OmniglotFolder(str(root), background=True)
    assert len(background) == 964 * 20
    image, _ = background[0]
    assert image.mode == "L" and image.size == (105, 105)


@needs_mirror
def test_prepared_omniglot_is_the_lanczos_resize_of_the_original(omniglot):
    prepared = omniglot[1]
    images = prepared["images"]
    assert images.shape == (1623, 20, 28, 28) and images.dtype == np.uint8
    raw = np.load(MIRROR / "omniglot/images_evaluation.npz")["images"]
    for char, drawer in [(0, 0), (300, 7), (658, 19)]:
        original = Image.fromarray(raw[char, drawer]).convert("1").convert("L")
        expected = np.asarray(original.resize((28, 28), Image.LANCZOS))
        np.testing.assert_array_equal(images[964 + char, drawer], expected)
    assert str(prepared["names"][964]) == "images_evaluation/Angelic/character01"
    split = data.omniglot_split()
    assert [len(split[k]) for k in ("train", "val", "test")] == [1200, 100, 323]
    assert len(np.unique(np.concatenate(list(split.values())))) == 1623


@pytest.fixture()
def omniglot_mirror_copy(tmp_path):
    copy = tmp_path / "mirror"
    shutil.copytree(MIRROR / "omniglot", copy / "omniglot")
    return copy


@needs_mirror
def test_corrupted_file_stops_with_its_name_and_the_expected_checksum(omniglot_mirror_copy, tmp_path):
    bad = omniglot_mirror_copy / "omniglot/images_background.npz"
    blob = bytearray(bad.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    bad.write_bytes(bytes(blob))
    with pytest.raises(data.DataError) as err:
        data.fetch_omniglot(tmp_path / "out", omniglot_mirror_copy)
    assert str(bad) in str(err.value)
    assert data.MIRROR_SHA256["omniglot/images_background.npz"] in str(err.value)
    # a mirror cannot be fetched again: the message says what can be done instead
    assert "fetch it again" not in str(err.value) and "data.mirror" in str(err.value)
    assert not (tmp_path / "out/omniglot-py").exists()       # nothing that looks finished
    assert not (tmp_path / "out/omniglot.part").exists()     # and nothing half-made left behind


@needs_mirror
def test_missing_file_is_named(omniglot_mirror_copy, tmp_path):
    (omniglot_mirror_copy / "omniglot/alphabets.json").unlink()
    with pytest.raises(data.DataError, match="alphabets.json: file is missing") as err:
        data.fetch_omniglot(tmp_path / "out", omniglot_mirror_copy)
    assert "set data.mirror: null" in str(err.value)


@pytest.fixture()
def tiny_miniimagenet(tmp_path, monkeypatch):
    """A mirror laid out like the real one, two classes of three JPEGs, with its own checksums."""
    mirror = tmp_path / "mirror/miniimagenet"
    mirror.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = ["filename,label"]
    with zipfile.ZipFile(mirror / "miniimagenet-train.zip", "w", zipfile.ZIP_STORED) as zf:
        for c in ("n02", "n01"):
            for i in range(3):
                name = f"{c}{i:08d}.jpg"
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (84, 84, 3), dtype=np.uint8)).save(buf, "JPEG", quality=95)
                zf.writestr(f"train/{c}/{name}", buf.getvalue())
                rows.append(f"{name},{c}")
    (mirror / "train.csv").write_text("\n".join(rows) + "\n")
    sums = {f"miniimagenet/{f}": hashlib.sha256((mirror / f).read_bytes()).hexdigest()
            for f in ("miniimagenet-train.zip", "train.csv")}
    monkeypatch.setattr(data, "MIRROR_SHA256", {**data.MIRROR_SHA256, **sums})
    return mirror.parent


def test_miniimagenet_from_the_mirror(tiny_miniimagenet, tmp_path):
    out = data.prepare_miniimagenet(tmp_path, tmp_path / "mini.npz", "train", tiny_miniimagenet)
    prepared = data.load_prepared(out)
    assert prepared["images"].shape == (2, 3, 84, 84, 3)
    assert prepared["classes"].tolist() == ["n01", "n02"]
    with zipfile.ZipFile(tiny_miniimagenet / "miniimagenet/miniimagenet-train.zip") as zf:
        first = np.asarray(Image.open(io.BytesIO(zf.read("train/n01/n0100000000.jpg"))).convert("RGB"))
    np.testing.assert_array_equal(prepared["images"][0, 0], first)


def test_corrupted_miniimagenet_leaves_no_output(tiny_miniimagenet, tmp_path, root, bin_dir):
    zpath = tiny_miniimagenet / "miniimagenet/miniimagenet-train.zip"
    zpath.write_bytes(zpath.read_bytes()[:-10])
    with pytest.raises(data.DataError, match="miniimagenet-train.zip: sha256 is"):
        data.prepare_miniimagenet(tmp_path, tmp_path / "mini.npz", "train", tiny_miniimagenet)
    assert list(tmp_path.glob("mini.npz*")) == []


@needs_mirror
def test_cli_reports_a_bad_mirror_in_one_line(tmp_path, root, bin_dir):
    mirror = tmp_path / "mirror/miniimagenet"
    mirror.mkdir(parents=True)
    shutil.copy(MIRROR / "miniimagenet/train.csv", mirror / "train.csv")
    (mirror / "miniimagenet-train.zip").write_bytes(b"not a zip")
    (tmp_path / "cfg.yaml").write_text(f"data: {{root: {tmp_path}, mirror: {tmp_path / 'mirror'}}}\n")
    proc = subprocess.run([sys.executable, "-m", "maml_convergence", "prepare-data", "--configfile",
                           str(tmp_path / "cfg.yaml"), "--dataset", "miniimagenet", "--out", str(tmp_path / "m.json")],
                          capture_output=True, text=True, env=env_with_bin(bin_dir), cwd=root)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert "miniimagenet-train.zip: sha256 is" in proc.stderr
    assert not (tmp_path / "m.json").exists() and not list(tmp_path.glob("prepared/*"))


def test_no_mirror_and_no_network_is_one_line_naming_the_url_and_data_mirror(tmp_path, monkeypatch, capsys):
    """The configured mirror folder does not exist and the canonical server cannot be reached."""
    from maml_convergence import cli

    monkeypatch.setattr(data, "OMNIGLOT_URL", "http://127.0.0.1:9/omniglot")  # nothing listens on port 9
    (tmp_path / "cfg.yaml").write_text(f"data: {{root: {tmp_path / 'data'}, mirror: {tmp_path / 'no-such-mirror'}}}\n")
    code = cli.main(["prepare-data", "--configfile", str(tmp_path / "cfg.yaml"), "--dataset", "omniglot",
                     "--out", str(tmp_path / "omniglot.json")])
    out, err = capsys.readouterr()
    assert code == 2
    assert "no-such-mirror" in out and "does not exist" in out
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "http://127.0.0.1:9/omniglot/images_background.zip" in err and "data.mirror" in err
    assert not (tmp_path / "omniglot.json").exists() and not (tmp_path / "data/prepared/omniglot.npz").exists()
    assert not (tmp_path / "data/omniglot/omniglot.part").exists()


def test_a_relative_mirror_is_relative_to_the_repository_wherever_the_command_runs(tmp_path, monkeypatch, root):
    """The workflow and the command line read the same config the same way."""
    from maml_convergence import step

    monkeypatch.chdir(tmp_path)
    assert step.mirror({"data": {"mirror": "../shared/data"}}) == (root / "../shared/data" if MIRROR.is_dir() else None)
    (root / "data").mkdir(exist_ok=True)
    assert step.mirror({"data": {"mirror": "data"}}) == root / "data"


@pytest.mark.slow
@needs_mirror
def test_prepared_data_is_made_once_and_shared(omniglot, monkeypatch):
    """A second run reuses the prepared file (checked by its sha256); a changed file is prepared again."""
    root, first = omniglot[2:]
    again = data.ensure_prepared("omniglot", root, MIRROR)
    assert not first["reused"] and again["reused"] and again["sha256"] == first["sha256"]
    path = data.prepared_path(root, "omniglot")
    data.check_prepared(path, first)
    original = path.read_bytes()
    path.write_bytes(original[:-1] + b"x")
    with pytest.raises(data.DataError, match="changed since this run recorded it"):
        data.check_prepared(path, first)
    prepared = []  # preparing it again takes as long as the first time: record the call, write what it wrote

    def prepare(_, out):
        prepared.append(out)
        out.write_bytes(original)

    monkeypatch.setattr(data, "fetch_omniglot", lambda folder, mirror: folder / "omniglot-py")
    monkeypatch.setattr(data, "prepare_omniglot", prepare)
    remade = data.ensure_prepared("omniglot", root, MIRROR)
    assert prepared == [path] and not remade["reused"] and remade["sha256"] == first["sha256"]
