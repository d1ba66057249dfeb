"""The paper's image datasets: fetch, verify, and prepare Omniglot and MiniImagenet.

Two ways in, one way out. A dataset comes either from its canonical source (the
files torchvision and torchmeta download, checked against their published md5s)
or from a local mirror folder (``data.mirror`` in the config; ``../shared/data``
on machines without internet), checked against pinned sha256s. Either way it ends
in the same *prepared* form that the experiments read:

* Omniglot: the folder layout ``omniglot-py/images_{background,evaluation}/<Alphabet>/
  characterNN/XXXX_YY.png`` that ``torchvision.datasets.Omniglot`` reads (rebuilt
  from the mirror's arrays, or unzipped from the canonical zips), then loaded
  *through torchvision*, resized to 28x28 as Finn et al. did, and stored as
  ``omniglot.npz`` (uint8 (1623, 20, 28, 28), white background = 255).
* MiniImagenet: ``miniimagenet-<split>.npz`` with uint8 (classes, 600, 84, 84, 3) in
  the order of Ravi & Larochelle's split CSV, from the canonical pickles or from the
  mirror's ImageFolder zip.

Every output is written to a temporary name and renamed when complete, so an
interrupted or failed preparation never leaves a file that looks finished. A
missing or corrupted input stops with a ``DataError`` naming the file and the
checksum it should have.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import pickle
import shutil
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import numpy as np

from . import problems
from .problems import OMNIGLOT
from .provenance import atomic_write, atomic_write_text, replace_dir

# --- canonical sources ---------------------------------------------------------------

# What torchvision.datasets.Omniglot downloads (torchvision/datasets/omniglot.py).
OMNIGLOT_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python"
OMNIGLOT_ZIP_MD5 = {"images_background": "68d2efa1b9178cc56df9314c21c6e718",
                    "images_evaluation": "6b91aef0f799c5bb55b94e3f2daec811"}
# Ravi & Larochelle's split as pickles, in the archive torchmeta downloads from Google Drive
# (also on Zenodo, record 7978538, as separate mini-imagenet-cache-<split>.pkl files).
MINIIMAGENET_GDRIVE_ID = "16V_ZlkW4SsnNDtnGmaBRq2OoPmUOc5mY"
MINIIMAGENET_ARCHIVE = "mini-imagenet.tar.gz"
MINIIMAGENET_ARCHIVE_MD5 = "b38f1eb4251fb9459ecc8e7febf9b2eb"
MINIIMAGENET_ZENODO = "https://zenodo.org/record/7978538/files/mini-imagenet-cache-{split}.pkl"

# --- the offline mirror (see ../shared/data/README.md) ---------------------------------

MIRROR_SHA256 = {
    "omniglot/images_background.npz": "8bf84167413cd00beacdce3fe582f780ab538d8dbef043a6d688f2527bbce199",
    "omniglot/images_evaluation.npz": "0b84c7ffd94c4841c0040e529c86a82eaaccb986d8eadad5673f7991b7475276",
    "omniglot/alphabets.json": "fb94420b427dfea0652bfefbf9cd4b03ce4b33ba87b9396ff75946ea11fcb686",
    "miniimagenet/miniimagenet-train.zip": "41c9e7884904043e9a32714cc69cffd3330a952399b79ba927cf934d3af0cafe",
    "miniimagenet/train.csv": "498519cd8e49ce97ed26a4a3638966698ae41ab35e9c68538319fc9b46ba7d2f",
    "miniimagenet/val.csv": "5658a59921ca027ee76af92949869c5d6f41d77592ff3b18db325a9d10c893b9",
    "miniimagenet/test.csv": "2b7cfa78342995761a572a8158e539bc4e0a80f9bbd7d00c1e17a460fbbb93fa",
}

OMNIGLOT_SETS = ("images_background", "images_evaluation")
OMNIGLOT_CHARACTERS = 1623
OMNIGLOT_DRAWERS = 20
OMNIGLOT_SIZE = 28
MINIIMAGENET_SPLITS = {"train": "train", "val": "validation", "test": "test"}  # csv name -> pickle name
MINIIMAGENET_SIZE = 84


class DataError(RuntimeError):
    """A dataset file is missing, corrupted or not what it should be; the message names it."""


def file_hash(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


MIRROR_REMEDY = ("the mirror (data.mirror in the config) is incomplete or damaged: restore the file from a good "
                 "copy (see data/README.md), or set data.mirror: null to download from the canonical source")
DOWNLOAD_REMEDY = "delete it and run again: it is downloaded anew"


def verify(path: Path, expected: str, algorithm: str = "sha256", remedy: str = DOWNLOAD_REMEDY) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file is missing (expected {algorithm} {expected}); {remedy}")
    got = file_hash(path, algorithm)
    if got != expected:
        raise DataError(f"{path}: {algorithm} is {got}, expected {expected}; the file is corrupted or "
                        f"not the published one: {remedy}")
    return path


def _mirror_file(mirror: Path, name: str) -> Path:
    return verify(Path(mirror) / name, MIRROR_SHA256[name], remedy=MIRROR_REMEDY)


@contextlib.contextmanager
def _download(what: str):
    """Turn a failed download (no network, a server gone) into one line naming what was fetched."""
    try:
        yield
    except (urllib.error.URLError, OSError, RuntimeError) as e:
        reason = getattr(e, "reason", None) or e
        raise DataError(f"cannot download {what}: {reason}. Offline? Point data.mirror in the config at a local "
                        f"copy of the datasets (laid out as data/README.md says)") from None


def _save_npz(path: Path, **arrays) -> None:
    with atomic_write(path) as tmp, open(tmp, "wb") as f:  # a file object: numpy appends no .npz to the name
        np.savez(f, **arrays)


# --- Omniglot ------------------------------------------------------------------------

def fetch_omniglot(root: Path, mirror: Path | None = None) -> Path:
    """Make ``root/omniglot-py`` hold the folder layout torchvision's Omniglot reads."""
    root = Path(root)
    final = root / "omniglot-py"
    tmp = root / "omniglot.part"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        if mirror is not None:
            _omniglot_from_mirror(Path(mirror), tmp / "omniglot-py")
        else:
            for background in (True, False):  # torchvision downloads both zips and checks their md5s
                name = OMNIGLOT_SETS[0 if background else 1]
                with _download(f"{OMNIGLOT_URL}/{name}.zip"):
                    OmniglotFolder(str(tmp), background=background, download=True)
        replace_dir(tmp / "omniglot-py", final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _omniglot_class():
    from torchvision.datasets import Omniglot

    class OmniglotFolder(Omniglot):
        """torchvision's Omniglot, also accepting a folder rebuilt from the verified mirror.

        torchvision checks the md5 of the zip it downloaded; the mirror path has no zip,
        but its arrays were sha256-checked before the folder was written, so the folder's
        presence is the integrity check there.
        """

        download_url_prefix = OMNIGLOT_URL

        def _check_integrity(self) -> bool:
            return super()._check_integrity() or (Path(self.root) / self._get_target_folder()).is_dir()

    return OmniglotFolder


def OmniglotFolder(*args, **kwargs):
    return _omniglot_class()(*args, **kwargs)


def _omniglot_from_mirror(mirror: Path, out: Path) -> None:
    from PIL import Image

    alphabets = json.loads(_mirror_file(mirror, "omniglot/alphabets.json").read_text())
    first_id = {"images_background": 1, "images_evaluation": 965}
    for name in OMNIGLOT_SETS:
        arrays = np.load(_mirror_file(mirror, f"omniglot/{name}.npz"))
        images = arrays["images"]
        if images.shape[1:] != (OMNIGLOT_DRAWERS, 105, 105):
            raise DataError(f"{mirror}/omniglot/{name}.npz: images have shape {images.shape}, "
                            f"expected (characters, 20, 105, 105)")
        for entry in alphabets[name]:
            lo, hi = entry["first_character_id"], entry["last_character_id"]
            for char_id in range(lo, hi + 1):
                folder = out / name / entry["alphabet"] / f"character{char_id - lo + 1:02d}"
                folder.mkdir(parents=True)
                row = char_id - first_id[name]
                for drawer in range(OMNIGLOT_DRAWERS):
                    # mode "1" reproduces the original 1-bit PNGs (True = white background)
                    Image.fromarray(images[row, drawer]).convert("1").save(
                        folder / f"{char_id:04d}_{drawer + 1:02d}.png")


def prepare_omniglot(root: Path, out: Path) -> Path:
    """Load every character through torchvision, resize to 28x28 (Lanczos, as Finn et al.), save."""
    from PIL import Image

    resize = lambda img: np.asarray(img.resize((OMNIGLOT_SIZE, OMNIGLOT_SIZE), Image.LANCZOS))
    images = np.zeros((OMNIGLOT_CHARACTERS, OMNIGLOT_DRAWERS, OMNIGLOT_SIZE, OMNIGLOT_SIZE), dtype=np.uint8)
    seen = np.zeros((OMNIGLOT_CHARACTERS, OMNIGLOT_DRAWERS), dtype=bool)
    names = np.empty(OMNIGLOT_CHARACTERS, dtype=object)
    for background in (True, False):
        try:
            ds = OmniglotFolder(str(root), background=background, download=False, transform=resize)
        except RuntimeError as e:
            raise DataError(f"{root}/omniglot-py: {e}") from None
        # index by the file name XXXX_YY.png (character id, drawer): torchvision lists folders
        # in file-system order, which differs between machines
        for i, (file, char) in enumerate(ds._flat_character_images):
            char_id, drawer = int(file[:4]) - 1, int(file[5:7]) - 1
            images[char_id, drawer] = ds[i][0]
            seen[char_id, drawer] = True
            names[char_id] = f"{ds._get_target_folder()}/{ds._characters[char]}"
    if not seen.all():
        char_id, drawer = np.argwhere(~seen)[0]
        raise DataError(f"{root}/omniglot-py: {int((~seen).sum())} images missing, e.g. "
                        f"{char_id + 1:04d}_{drawer + 1:02d}.png")
    _save_npz(out, images=images, names=names.astype(str))
    return Path(out)


def omniglot_split(seed: int = 1) -> dict[str, np.ndarray]:
    """Character indices of each split: 1,200 train (Vinyals et al.), then 100 val and 323 test.

    A fixed permutation of all 1,623 characters (background and evaluation sets
    together, as Finn et al.'s code does).
    """
    order = np.random.RandomState(seed).permutation(OMNIGLOT_CHARACTERS)
    return {"train": order[:1200], "val": order[1200:1300], "test": order[1300:]}


# --- MiniImagenet ---------------------------------------------------------------------

def prepare_miniimagenet(root: Path, out: Path, split: str = "train", mirror: Path | None = None) -> Path:
    """``miniimagenet-<split>.npz``: uint8 images (classes, 600, 84, 84, 3) and the class ids."""
    if split not in MINIIMAGENET_SPLITS:
        raise DataError(f"unknown MiniImagenet split {split!r} (one of {sorted(MINIIMAGENET_SPLITS)})")
    if mirror is not None:
        images, classes = _miniimagenet_from_mirror(Path(mirror), split)
    else:
        images, classes = _miniimagenet_from_source(Path(root), split)
    _save_npz(out, images=images, classes=np.array(classes))
    return Path(out)


def _miniimagenet_from_source(root: Path, split: str):
    from torchvision.datasets.utils import download_file_from_google_drive

    root.mkdir(parents=True, exist_ok=True)
    archive = root / MINIIMAGENET_ARCHIVE
    if not archive.exists():
        with _download(f"{MINIIMAGENET_ARCHIVE} (Google Drive id {MINIIMAGENET_GDRIVE_ID})"):
            download_file_from_google_drive(MINIIMAGENET_GDRIVE_ID, str(root), MINIIMAGENET_ARCHIVE,
                                            md5=MINIIMAGENET_ARCHIVE_MD5)
    verify(archive, MINIIMAGENET_ARCHIVE_MD5, "md5")
    member = f"mini-imagenet-cache-{MINIIMAGENET_SPLITS[split]}.pkl"
    with tarfile.open(archive) as tar:
        try:
            data = pickle.load(tar.extractfile(member))
        except KeyError:
            raise DataError(f"{archive}: has no {member}") from None
    image_data = np.asarray(data["image_data"], dtype=np.uint8)
    classes = sorted(data["class_dict"])
    images = np.stack([image_data[np.asarray(data["class_dict"][c])] for c in classes])
    return images, classes


def _miniimagenet_from_mirror(mirror: Path, split: str):
    from PIL import Image

    csv = _mirror_file(mirror, f"miniimagenet/{split}.csv")
    rows = [line.split(",") for line in csv.read_text().splitlines()[1:] if line]
    classes = sorted({label for _, label in rows})
    files = {c: [f for f, label in rows if label == c] for c in classes}
    zip_name = f"miniimagenet/miniimagenet-{split}.zip"
    if zip_name not in MIRROR_SHA256:
        raise DataError(f"the mirror holds no images of split {split!r} ({zip_name}); only the canonical "
                        f"pickles do")
    per_class = len(files[classes[0]])
    images = np.empty((len(classes), per_class, MINIIMAGENET_SIZE, MINIIMAGENET_SIZE, 3), dtype=np.uint8)
    with zipfile.ZipFile(_mirror_file(mirror, zip_name)) as zf:
        for ci, c in enumerate(classes):
            if len(files[c]) != per_class:
                raise DataError(f"{csv}: class {c} has {len(files[c])} images, expected {per_class}")
            for i, f in enumerate(files[c]):
                try:
                    raw = zf.read(f"{split}/{c}/{f}")
                except KeyError:
                    raise DataError(f"{mirror}/{zip_name}: missing {split}/{c}/{f}") from None
                img = Image.open(io.BytesIO(raw)).convert("RGB")
                if img.size != (MINIIMAGENET_SIZE, MINIIMAGENET_SIZE):
                    img = img.resize((MINIIMAGENET_SIZE, MINIIMAGENET_SIZE), Image.LANCZOS)
                images[ci, i] = np.asarray(img)
    return images, classes


# --- the prepared datasets, shared by every run -------------------------------------------

def prepared_path(root: Path, dataset: str) -> Path:
    return Path(root) / "prepared" / problems.get(dataset).prepared


def ensure_prepared(dataset: str, root: Path, mirror: Path | None) -> dict:
    """Make ``root/prepared/<dataset>`` once and return its record (sha256, source).

    Every working directory (the paper run, ``make quick``, the tests) shares one copy; a
    record beside the file says what it holds, so a later run reuses it after checking its
    sha256 instead of preparing it again. A lock keeps two runs from preparing it at once.
    """
    root = Path(root)
    path = prepared_path(root, dataset)
    record_path = path.with_name(path.name + ".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(root / ".prepare.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.is_file() and record_path.is_file():
            record = json.loads(record_path.read_text())
            if record.get("sha256") == file_hash(path):
                return {**record, "reused": True}
            print(f"[data] {path} does not match its record {record_path.name}: preparing it again")
        if dataset == OMNIGLOT:
            prepare_omniglot(fetch_omniglot(root / dataset, mirror).parent, path)
        else:
            prepare_miniimagenet(root / dataset, path, "train", mirror)
        source = f"mirror {mirror}" if mirror is not None else (
            OMNIGLOT_URL if dataset == OMNIGLOT else f"{MINIIMAGENET_ARCHIVE} (Google Drive, torchmeta)")
        record = {"dataset": dataset, "file": path.name, "sha256": file_hash(path), "source": source}
        atomic_write_text(record_path, json.dumps(record, indent=2) + "\n")
        return {**record, "reused": False}


def check_prepared(path: Path, record: dict) -> Path:
    """The prepared file the workflow recorded for this run, unchanged since."""
    path = Path(path)
    if not path.is_file() or file_hash(path) != record["sha256"]:
        raise DataError(f"{path}: missing or changed since this run recorded it (sha256 {record['sha256']}); "
                        f"prepare it again: snakemake --forcerun dataset")
    return path


def load_prepared(path: Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: prepared dataset is missing; run the workflow's data rules "
                        f"(snakemake {path}) first")
    with np.load(path) as f:
        return {k: f[k] for k in f.files}
