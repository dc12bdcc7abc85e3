"""Every on-disk format of jadv.data on tiny generated files, incl. corrupt and malicious ones."""
import gzip
import io
import os
import pickle
import struct
import tarfile

import numpy as np


def write_idx(path, array, magic=None, gz=False, truncate=0, extra=b""):
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 2048 + array.ndim
    data = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes() + extra
    if truncate:
        data = data[:-truncate]
    if gz:
        data = gzip.compress(data)
    with open(path, "wb") as f:
        f.write(data)


def write_mnist_dir(folder, rng, n_train=12, n_test=7, gz=True, hw=(28, 28)):
    os.makedirs(folder, exist_ok=True)
    ext = ".gz" if gz else ""
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, *hw), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte{ext}"), images, gz=gz)
        write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{ext}"), labels, gz=gz)
        out[split] = (images, labels)
    return out


def cifar_rows(images):
    """NHWC uint8 -> [N, 3072] channel-major rows as in the CIFAR files."""
    return np.ascontiguousarray(np.asarray(images).transpose(0, 3, 1, 2).reshape(len(images), -1))


def write_cifar10_binary(folder, rng, per_batch=3, n_test=4):
    os.makedirs(folder, exist_ok=True)
    out = {"train": [], "test": []}
    files = [(f"data_batch_{i}.bin", "train", per_batch) for i in range(1, 6)] + [("test_batch.bin", "test", n_test)]
    for fn, split, n in files:
        images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        rec = np.concatenate([labels[:, None], cifar_rows(images)], axis=1)
        rec.tofile(os.path.join(folder, fn))
        out[split].append((images, labels))
    with open(os.path.join(folder, "batches.meta.txt"), "w") as f:
        f.write("\n".join(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]) + "\n\n")
    return {k: (np.concatenate([a for a, _ in v]), np.concatenate([b for _, b in v])) for k, v in out.items()}


def write_cifar100_binary(folder, rng, n_train=5, n_test=3):
    os.makedirs(folder, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        coarse = rng.integers(0, 20, size=n, dtype=np.uint8)
        fine = rng.integers(0, 100, size=n, dtype=np.uint8)
        np.concatenate([coarse[:, None], fine[:, None], cifar_rows(images)], axis=1).tofile(
            os.path.join(folder, f"{split}.bin"))
        out[split] = (images, fine)
    return out


def write_cifar_python(folder, rng, *, hundred=False, protocol=2, bytes_keys=True, n=3):
    os.makedirs(folder, exist_ok=True)
    k = (lambda s: s.encode()) if bytes_keys else (lambda s: s)
    label_key = "fine_labels" if hundred else "labels"
    files = ([("train", "train"), ("test", "test")] if hundred
             else [(f"data_batch_{i}", "train") for i in range(1, 6)] + [("test_batch", "test")])
    out = {"train": [], "test": []}
    for fn, split in files:
        images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 100 if hundred else 10, size=n)
        d = {k("data"): cifar_rows(images), k(label_key): [int(v) for v in labels], k("filenames"): [b"x.png"] * n}
        if hundred:
            d[k("coarse_labels")] = [0] * n
        with open(os.path.join(folder, fn), "wb") as f:
            pickle.dump(d, f, protocol=protocol)
        out[split].append((images, labels))
    names = [f"c{i}" for i in range(100 if hundred else 10)]
    meta = {k("fine_label_names" if hundred else "label_names"): [s.encode() for s in names]}
    with open(os.path.join(folder, "meta" if hundred else "batches.meta"), "wb") as f:
        pickle.dump(meta, f, protocol=protocol)
    res = {s: (np.concatenate([a for a, _ in v]), np.concatenate([b for _, b in v])) for s, v in out.items()}
    return res, tuple(names)


def tar_folder(archive, folder, arcname, mode="w:gz"):
    with tarfile.open(archive, mode) as tf:
        tf.add(folder, arcname=arcname)


def png_bytes(array):
    from PIL import Image

    buf = io.BytesIO()
    arr = np.asarray(array)
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(buf, format="PNG")
    return buf.getvalue()


def add_bytes(tf, name, data, **attrs):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for a, v in attrs.items():
        setattr(info, a, v)
    tf.addfile(info, io.BytesIO(data))


# ============================================================================ tests
import pytest  # noqa: E402

import jadv.data as D  # noqa: E402
from jadv.data import archive as _archive  # noqa: E402
from jadv.data import image_folder as _image_folder  # noqa: E402
from jadv.data import tfds_source as _tfds  # noqa: E402




@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ---------------------------------------------------------------------------- names, search
def test_unknown_name_and_split_list_allowed(env):
    with pytest.raises(ValueError, match="allowed: 'mnist', 'fashion_mnist', 'cifar10'"):
        D.load("imagenet", "train")
    with pytest.raises(ValueError, match="allowed: 'train', 'test'"):
        D.load("mnist", "validation")


def test_missing_dataset_lists_every_place(env, tmp_path, monkeypatch):
    other = tmp_path / "envdir"
    monkeypatch.setenv("JADV_DATA_DIR", str(other))
    with pytest.raises(FileNotFoundError) as e:
        D.load("cifar100", "train", data_dir=env)
    msg = str(e.value)
    for place in (str(env / "cifar-100-binary"), str(env / "cifar-100-python.tar.gz"), str(other),
                  str(tmp_path / "shared" / "data"), "TensorFlow Datasets", "pip install jadv[tfds]",
                  "JADV_DATA_DIR"):
        assert place in msg
    with pytest.raises(FileNotFoundError, match="debian-fashion"):
        D.load("fashion_mnist", "test", data_dir=env)


def test_search_order_data_dir_then_env(env, tmp_path, monkeypatch, rng):
    first = write_mnist_dir(str(env / "mnist"), rng, n_train=3)
    other = tmp_path / "envdir"
    second = write_mnist_dir(str(other / "mnist"), rng, n_train=5)
    monkeypatch.setenv("JADV_DATA_DIR", str(other))
    assert len(D.load("mnist", "train", data_dir=env)) == 3
    assert len(D.load("mnist", "train")) == 5
    np.testing.assert_array_equal(D.load("mnist", "train").labels, second["train"][1])
    del first
    # ../shared/data relative to the working directory
    shared = tmp_path / "shared" / "data" / "mnist"
    write_mnist_dir(str(shared), rng, n_train=4)
    monkeypatch.delenv("JADV_DATA_DIR")
    assert len(D.load("mnist", "train")) == 4


# ---------------------------------------------------------------------------- IDX
@pytest.mark.parametrize("gz", [True, False])
def test_idx_roundtrip_gz_and_raw(env, rng, gz):
    ref = write_mnist_dir(str(env / "mnist"), rng, gz=gz)
    for split in ("train", "test"):
        ds = D.load("mnist", split, data_dir=env)
        assert ds.images.dtype == np.uint8 and ds.images.shape == (len(ref[split][0]), 28, 28, 1)
        assert ds.labels.dtype == np.int32
        np.testing.assert_array_equal(ds.images[..., 0], ref[split][0])
        np.testing.assert_array_equal(ds.labels, ref[split][1])
        assert ds.class_names == tuple("0123456789") and ds.num_classes == 10
        assert ds.name == "mnist" and ds.split == split


@pytest.mark.parametrize("folder", ["fashion_mnist", "fashion-mnist"])
def test_fashion_mnist_folders(env, rng, folder):
    ref = write_mnist_dir(str(env / folder), rng)
    ds = D.load("fashion_mnist", "test", data_dir=env)
    np.testing.assert_array_equal(ds.labels, ref["test"][1])
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"


def test_fashion_mnist_debian_location(env, rng, monkeypatch, tmp_path):
    ref = write_mnist_dir(str(tmp_path / "debian-fashion"), rng)
    ds = D.load("fashion_mnist", "train")
    np.testing.assert_array_equal(ds.images[..., 0], ref["train"][0])


def test_idx_bad_magic(tmp_path, rng):
    p = tmp_path / "x-images-idx3-ubyte"
    write_idx(p, rng.integers(0, 255, (2, 4, 4)), magic=2049)
    with pytest.raises(ValueError, match=r"bad IDX magic number 2049.*expected 2051") as e:
        D.read_idx(p, magic=2051)
    assert str(p) in str(e.value)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_truncated_names_file(tmp_path, rng, gz):
    p = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(p, rng.integers(0, 255, (3, 5, 5)), truncate=7, gz=gz)
    with pytest.raises(ValueError, match="truncated") as e:
        D.read_idx(p, magic=2051)
    assert str(p) in str(e.value)


def test_idx_truncated_gzip_stream(tmp_path, rng):
    p = tmp_path / "a.gz"
    write_idx(p, rng.integers(0, 255, (3, 5, 5)), gz=True)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated|corrupt"):
        D.read_idx(p, magic=2051)


def test_idx_trailing_bytes_and_short_header(tmp_path, rng):
    p = tmp_path / "a"
    write_idx(p, rng.integers(0, 255, (3,)), extra=b"xx")
    with pytest.raises(ValueError, match="after the data"):
        D.read_idx(p, magic=2049)
    p.write_bytes(struct.pack(">I", 2051) + b"\x00\x00")
    with pytest.raises(ValueError, match="truncated IDX header"):
        D.read_idx(p, magic=2051)


def test_idx_count_mismatch(env, rng):
    folder = env / "mnist"
    write_mnist_dir(str(folder), rng)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, 3), gz=True)
    with pytest.raises(ValueError, match="7 images but .* has 3 labels"):
        D.load("mnist", "test", data_dir=env)


# ---------------------------------------------------------------------------- CIFAR binary / python
def test_cifar10_binary(env, rng):
    ref = write_cifar10_binary(str(env / "cifar-10-batches-bin"), rng)
    for split, n in (("train", 15), ("test", 4)):
        ds = D.load("cifar10", split, data_dir=env)
        assert ds.images.shape == (n, 32, 32, 3) and ds.images.dtype == np.uint8
        np.testing.assert_array_equal(ds.images, ref[split][0])
        np.testing.assert_array_equal(ds.labels, ref[split][1])
        assert ds.class_names == D.CIFAR10_CLASSES


def test_cifar100_binary_uses_fine_labels(env, rng):
    ref = write_cifar100_binary(str(env / "cifar-100-binary"), rng)
    ds = D.load("cifar100", "train", data_dir=env)
    np.testing.assert_array_equal(ds.images, ref["train"][0])
    np.testing.assert_array_equal(ds.labels, ref["train"][1])
    assert ds.num_classes == 100 and ds.class_names == D.CIFAR100_CLASSES


def test_cifar_binary_truncated(env, rng):
    folder = env / "cifar-10-batches-bin"
    write_cifar10_binary(str(folder), rng)
    p = folder / "test_batch.bin"
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(ValueError, match="not a positive multiple of the 3073-byte") as e:
        D.load("cifar10", "test", data_dir=env)
    assert str(p) in str(e.value)


@pytest.mark.parametrize("protocol,bytes_keys", [(2, True), (pickle.HIGHEST_PROTOCOL, False)])
def test_cifar10_python(env, rng, protocol, bytes_keys):
    ref, names = write_cifar_python(str(env / "cifar-10-batches-py"), rng, protocol=protocol, bytes_keys=bytes_keys)
    ds = D.load("cifar10", "train", data_dir=env)
    np.testing.assert_array_equal(ds.images, ref["train"][0])
    np.testing.assert_array_equal(ds.labels, ref["train"][1])
    assert ds.class_names == names  # read from batches.meta


def test_cifar100_python(env, rng):
    ref, names = write_cifar_python(str(env / "cifar-100-python"), rng, hundred=True)
    ds = D.load("cifar100", "test", data_dir=env)
    np.testing.assert_array_equal(ds.images, ref["test"][0])
    np.testing.assert_array_equal(ds.labels, ref["test"][1])
    assert ds.class_names == names


def test_pickle_with_numpy_array_values_allowed(tmp_path):
    p = tmp_path / "batch"
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for protocol in (2, 4, 5):
        with open(p, "wb") as f:
            pickle.dump({"data": arr, "x": np.int64(3), "l": [1, 2]}, f, protocol=protocol)
        out = D.restricted_load(p)
        np.testing.assert_array_equal(out["data"], arr)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_rejects_os_system(env, tmp_path, rng):
    marker = tmp_path / "pwned"
    folder = env / "cifar-10-batches-py"
    write_cifar_python(str(folder), rng)
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({b"data": _Evil(marker), b"labels": [0]}, f, protocol=2)
    with pytest.raises(ValueError, match=r"posix.system|os.system|not allowed") as e:
        D.load("cifar10", "train", data_dir=env)
    assert "data_batch_3" in str(e.value)
    assert not marker.exists()


def test_restricted_unpickler_rejects_builtins_eval(tmp_path):
    p = tmp_path / "evil"
    p.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(ValueError, match="builtins.eval is not allowed"):
        D.restricted_load(p)


@pytest.mark.parametrize("fmt", ["binary", "python"])
def test_cifar10_tar_gz_archives(env, tmp_path, rng, fmt):
    src = tmp_path / "src"
    if fmt == "binary":
        ref = write_cifar10_binary(str(src / "cifar-10-batches-bin"), rng)
        tar_folder(env / "cifar-10-binary.tar.gz", src / "cifar-10-batches-bin", "cifar-10-batches-bin")
    else:
        ref, _ = write_cifar_python(str(src / "cifar-10-batches-py"), rng)
        tar_folder(env / "cifar-10-python.tar.gz", src / "cifar-10-batches-py", "cifar-10-batches-py")
    ds = D.load("cifar10", "test", data_dir=env)
    np.testing.assert_array_equal(ds.images, ref["test"][0])
    np.testing.assert_array_equal(ds.labels, ref["test"][1])
    extracted = list((tmp_path / "cache" / "extracted").iterdir())
    assert len(extracted) == 1  # extracted once into the cache folder
    ds2 = D.load("cifar10", "train", data_dir=env)
    np.testing.assert_array_equal(ds2.labels, ref["train"][1])
    assert len(list((tmp_path / "cache" / "extracted").iterdir())) == 1


# ---------------------------------------------------------------------------- safe extraction
def _malicious(archive, name="../evil", **attrs):
    with tarfile.open(archive, "w:gz") as tf:
        add_bytes(tf, "cifar-10-batches-bin/readme.txt", b"ok")
        add_bytes(tf, name, b"evil", **attrs)


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink"])
def test_safe_extract_rejects_malicious_archive(tmp_path, kind):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    archive = work / "evil.tar.gz"
    absolute_target = tmp_path / "abs_evil"
    if kind == "dotdot":
        _malicious(archive, "../evil")
    elif kind == "absolute":
        _malicious(archive, str(absolute_target))
    elif kind == "symlink":
        _malicious(archive, "cifar-10-batches-bin/link", type=tarfile.SYMTYPE, linkname="../../../etc/passwd")
    else:
        _malicious(archive, "cifar-10-batches-bin/hl", type=tarfile.LNKTYPE, linkname="../outside")
    dest = work / "dest"
    with pytest.raises(ValueError, match="refusing unsafe archive member"):
        D.safe_extract(archive, dest)
    assert not dest.exists()
    assert not (work / "evil").exists() and not absolute_target.exists()
    assert sorted(p.name for p in work.iterdir()) == ["evil.tar.gz"]  # no temp folders left


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_safe_extract_refuses_every_link(tmp_path, kind):
    """Even a link whose target reads as inside the archive: dataset archives need none."""
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as tf:
        add_bytes(tf, "d/a.txt", b"hello")
        add_bytes(tf, "d/b.txt", b"", type=kind, linkname="a.txt" if kind == tarfile.SYMTYPE else "d/a.txt")
    with pytest.raises(ValueError, match=r"member 'd/b.txt' \((symbolic|hard) link to 'd?/?a.txt'"):
        D.safe_extract(archive, tmp_path / "out")
    with pytest.raises(ValueError, match="must not contain links"):
        list(_archive.iter_files(archive))
    assert not (tmp_path / "out").exists()


def _path_max_link_chain(archive, outside, levels=24, width=200):
    """The CVE-2025-4517 pattern: links ``s0 -> LONG``, ``s0/s1 -> LONG``, ... make the short name
    ``s0/.../s23`` resolve to a path longer than PATH_MAX, where ``os.path.realpath`` (and with it
    ``filter="data"``) stops resolving before Python 3.11.13; below it, ``up -> ../..`` resolves to
    the extraction root, and ``up/esc`` reads as a path inside the archive but points at
    ``outside``, where the last member writes a file."""
    long = "d" * width
    with tarfile.open(archive, "w") as tf:
        prefix = ""
        for i in range(levels):
            add_bytes(tf, prefix + long, b"", type=tarfile.DIRTYPE)
            add_bytes(tf, prefix + f"s{i}", b"", type=tarfile.SYMTYPE, linkname=long)
            prefix += f"s{i}/"
        add_bytes(tf, prefix + "up", b"", type=tarfile.SYMTYPE, linkname="../" * levels)
        rel = os.path.abspath(outside).lstrip("/")
        add_bytes(tf, prefix + "up/esc", b"", type=tarfile.SYMTYPE, linkname="../" * (levels + 1) + rel)
        add_bytes(tf, prefix + "up/esc/evil.txt", b"escaped")


def test_safe_extract_refuses_a_path_max_link_chain(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = tmp_path / "chain.tar"
    _path_max_link_chain(archive, outside)
    with pytest.raises(ValueError, match=r"refusing unsafe archive member 's0' \(symbolic link to 'd+\.\.\.'"):
        D.safe_extract(archive, tmp_path / "dest")
    assert list(outside.iterdir()) == [] and not (tmp_path / "dest").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chain.tar", "outside"]   # no temp folders left


def test_cifar_archive_with_traversal_rejected_by_load(env, tmp_path):
    _malicious(env / "cifar-10-binary.tar.gz")
    with pytest.raises(ValueError, match="unsafe"):
        D.load("cifar10", "test", data_dir=env)
    assert not (env.parent / "evil").exists()
    assert not (tmp_path / "cache" / "evil").exists() and not (tmp_path / "evil").exists()


# ---------------------------------------------------------------------------- image folders
# every class of the dataset (a known dataset's folder copy must hold all of them), not in sorted order
CIFAR10_SHUFFLED = ("cat", "airplane", "dog", "truck", "bird", "ship", "automobile", "frog", "horse", "deer")


def _make_tree(rng, n_per=3, classes=CIFAR10_SHUFFLED, size=(6, 5), channels=3):
    """{split: {class: [arrays]}} with distinct random images."""
    tree = {}
    for split, n in (("train", n_per), ("test", n_per - 1)):
        tree[split] = {c: [rng.integers(0, 256, size=(*size, channels), dtype=np.uint8) for _ in range(n)]
                       for c in classes}
    return tree


def _write_tree_dir(root, tree):
    for split, per in tree.items():
        for cls, imgs in per.items():
            d = os.path.join(root, split, cls)
            os.makedirs(d, exist_ok=True)
            for i, im in enumerate(imgs):
                with open(os.path.join(d, f"{i:04d}.png"), "wb") as f:
                    f.write(png_bytes(im))


def _write_tree_tar(archive, tree, mode, prefix=""):
    with tarfile.open(archive, mode) as tf:
        for split, per in tree.items():
            for cls, imgs in per.items():
                for i, im in enumerate(imgs):
                    add_bytes(tf, f"{prefix}{split}/{cls}/{i:04d}.png", png_bytes(im))


def _expected(tree, split):
    classes = sorted(tree[split])
    images = [im for c in classes for im in tree[split][c]]
    labels = [k for k, c in enumerate(classes) for _ in tree[split][c]]
    return np.stack(images), np.array(labels), tuple(classes)


@pytest.mark.parametrize("container", ["folder", "tar", "tar.gz", "tar.xz"])
def test_image_folder_formats(env, tmp_path, rng, container):
    tree = _make_tree(rng)
    if container == "folder":
        source = env / "cifar10"
        _write_tree_dir(source, tree)
    else:
        source = env / f"cifar10-jpeg.{container}"
        _write_tree_tar(source, tree, {"tar": "w", "tar.gz": "w:gz", "tar.xz": "w:xz"}[container])
    splits, classes = D.decode_image_folder(source, order="sorted")
    assert classes == D.CIFAR10_CLASSES
    for split in ("train", "test"):
        images, labels, _ = _expected(tree, split)
        np.testing.assert_array_equal(splits[split][0], images)
        np.testing.assert_array_equal(splits[split][1], labels)
        # load(): the same examples in the fixed shuffled order
        ds = D.load("cifar10", split, data_dir=env)
        perm = np.random.default_rng(0).permutation(len(labels))
        np.testing.assert_array_equal(ds.images, images[perm])
        np.testing.assert_array_equal(ds.labels, labels[perm])
        assert ds.class_names == classes and ds.images.dtype == np.uint8


def test_image_folder_under_top_level_folder_and_grayscale(env, rng):
    tree = _make_tree(rng, channels=1, classes=tuple("3140592687"))
    _write_tree_tar(env / "mnist.tar.gz", tree, "w:gz", prefix="mnist_png/")
    ds = D.load("mnist", "train", data_dir=env)
    assert ds.images.shape == (30, 6, 5, 1)
    images, labels, classes = _expected(tree, "train")
    perm = np.random.default_rng(0).permutation(len(labels))
    np.testing.assert_array_equal(ds.images, images[perm])
    assert classes == ds.class_names == tuple("0123456789")


def test_image_folder_cache_is_used(env, tmp_path, rng, monkeypatch):
    tree = _make_tree(rng)
    archive = env / "cifar10-jpeg.tar.xz"
    _write_tree_tar(archive, tree, "w:xz")
    first = D.load("cifar10", "test", data_dir=env)
    cached = sorted(p.name for p in (tmp_path / "cache").glob("cifar10-*.npz"))
    assert len(cached) == 2 and any(n.endswith("-train.npz") for n in cached)

    def no_decode(*a, **k):
        raise AssertionError("decoder called although the cache should be used")

    monkeypatch.setattr(_image_folder, "_decode_chunk", no_decode)
    again = D.load("cifar10", "test", data_dir=env)
    np.testing.assert_array_equal(again.images, first.images)
    np.testing.assert_array_equal(again.labels, first.labels)
    assert again.class_names == first.class_names
    train = D.load("cifar10", "train", data_dir=env)  # cached by the first load too
    assert len(train) == 30
    # a changed source (new mtime) is decoded again
    st = os.stat(archive)
    os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="decoder called"):
        D.load("cifar10", "test", data_dir=env)


def test_image_folder_explicit_cache_dir(env, tmp_path, rng):
    tree = _make_tree(rng)
    _write_tree_tar(env / "cifar10.tar", tree, "w")
    D.load("cifar10", "train", data_dir=env, cache_dir=tmp_path / "mycache")
    assert len(list((tmp_path / "mycache").glob("*.npz"))) == 2


def test_image_folder_traversal_rejected(env, tmp_path, rng):
    archive = env / "cifar10-jpeg.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        add_bytes(tf, "train/cat/0.png", png_bytes(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)))
        add_bytes(tf, "../evil", b"evil")
    with pytest.raises(ValueError, match=r"unsafe archive member '../evil'"):
        D.load("cifar10", "train", data_dir=env)
    assert not (env.parent / "evil").exists() and not (env / "evil").exists()


def test_image_folder_bad_inputs(env, tmp_path, rng):
    archive = env / "cifar10.tar"
    with tarfile.open(archive, "w") as tf:
        add_bytes(tf, "train/cat/0.png", png_bytes(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)))
        add_bytes(tf, "train/dog/1.png", png_bytes(rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)))
    with pytest.raises(ValueError, match="same size"):
        D.load("cifar10", "train", data_dir=env)
    with tarfile.open(archive, "w") as tf:
        add_bytes(tf, "train/cat/0.png", b"not a png at all")
    with pytest.raises(ValueError, match="cannot decode image 'train/cat/0.png'"):
        D.load("cifar10", "train", data_dir=env)
    with tarfile.open(archive, "w") as tf:
        add_bytes(tf, "train/cat/0.png", png_bytes(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)))
    with pytest.raises(ValueError, match="split 'test' not found; splits present: train"):
        D.load("cifar10", "test", data_dir=env)
    with pytest.raises(ValueError, match="order"):
        D.decode_image_folder(archive, order="random")
    with pytest.raises(FileNotFoundError):
        D.decode_image_folder(tmp_path / "nope.tar")


# ---------------------------------------------------------------------------- TFDS
def test_tfds_used_when_available(env, monkeypatch):
    calls = []

    def fake(name, split, *, data_dir=None):
        calls.append((name, split))
        return D.Dataset(np.zeros((2, 4, 4, 1), np.uint8), np.array([0, 1]), ("a", "b"), name, split)

    monkeypatch.setattr(_tfds, "tfds_available", lambda: True)
    monkeypatch.setattr(_tfds, "load_tfds", fake)
    ds = D.load("fashion_mnist", "train", data_dir=env)
    assert calls == [("fashion_mnist", "train")] and len(ds) == 2

    def broken(name, split, *, data_dir=None):
        raise AssertionError("Dataset fashion_mnist: could not find data")

    monkeypatch.setattr(_tfds, "load_tfds", broken)
    with pytest.raises(FileNotFoundError, match="could not find data"):
        D.load("fashion_mnist", "train", data_dir=env)


def test_tfds_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets", reason="tensorflow_datasets not installed (pip install jadv[tfds])")
    with tfds.testing.mock_data(num_examples=5):
        ds = D.load_tfds("mnist", "train")
    assert ds.images.shape == (5, 28, 28, 1) and ds.images.dtype == np.uint8 and ds.num_classes == 10


# ---------------------------------------------------------------------------- Dataset record
def test_dataset_validation():
    img = np.zeros((3, 2, 2, 1), np.uint8)
    with pytest.raises(TypeError, match="uint8"):
        D.Dataset(img.astype(np.float32), np.zeros(3, int), ("a",), "x", "train")
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        D.Dataset(img, np.zeros(2, int), ("a",), "x", "train")
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        D.Dataset(img, np.array([0, 1, 2]), ("a", "b"), "x", "train")
    ds = D.Dataset(img, np.array([0, 1, 1], np.int64), ["a", "b"], "x", "train")
    assert ds.labels.dtype == np.int32 and ds.class_names == ("a", "b") and ds.num_classes == 2
    with pytest.raises(Exception):
        ds.name = "y"



def test_python2_style_pickle_stream(tmp_path):
    """A byte stream as Python 2's cPickle (protocol 2) writes the real CIFAR batches: SHORT_BINSTRING
    keys and a numpy.core.multiarray._reconstruct array, read under numpy 2 without warnings."""
    stream = (b"\x80\x02}q\x00(U\x04dataq\x01cnumpy.core.multiarray\n_reconstruct\nq\x02cnumpy\nndarray\nq\x03"
              b"K\x00\x85U\x01b\x87Rq\x04(K\x01K\x01K\x03\x86cnumpy\ndtype\nq\x05U\x02u1K\x00K\x01\x87Rq\x06"
              b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89U\x03\x01\x02\x03tbU\x06labelsq\x07"
              b"]q\x08(K\x05K\x07eu.")
    p = tmp_path / "data_batch_1"
    p.write_bytes(stream)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = D.restricted_load(p)
    assert d[b"labels"] == [5, 7]
    np.testing.assert_array_equal(d[b"data"], np.array([[1, 2, 3]], np.uint8))
    assert d[b"data"].dtype == np.uint8
