#!/usr/bin/env python3
"""Generate the fixtures of cleval's compressed-chunk reader (tests/test_chunk_reader.c):
gzip-compressed chunked datasets written by h5py, each beside its numpy values stored plainly.

Run from the repository root: ``python3 tools/make_chunk_fixtures.py``. Writes to
``tests/fixtures/chunks/``; the C tests never run Python, so the outputs are committed.

* ``chunks.h5``: 103 samples (a prime: no batch or chunk size divides it). For every dataset
  NAME, ``NAME_expected`` holds the same numpy array uncompressed and contiguous.
  - ``u8_gzip1`` uint8 [103, 5, 7], gzip 1, chunks (10, 2, 3): chunks that divide neither N
    nor the sample shape (edge chunks padded in every dimension).
  - ``u8_gzip9_shuffle`` uint8 [103, 5, 7], shuffle + gzip 9, chunks (16, 5, 7).
  - ``f32_gzip9_shuffle`` float32 [103, 13], shuffle + gzip 9, chunks (7, 4).
  - ``f32_gzip1`` float32 [103, 13], gzip 1, chunks (50, 13): a chunk spans several batches.
  - ``i32_gzip6_shuffle`` int32 [103, 3, 3], shuffle + gzip 6, chunks (1, 3, 3): a batch
    spans many chunks.
  - ``y`` int32 [103] labels 0..9, shuffle + gzip 9, chunks (8,).
  - ``y_wide_chunk`` int32 [103] (resizable), gzip 1, chunks (256,): one chunk larger than
    the dataset.
  - ``partial`` float32 [103, 4], gzip 4, chunks (10, 4), fill value -3.5: only rows 0..29
    and 60..69 written, so the other chunks were never stored and read as the fill value.
  - ``skipped_filter`` float32 [30, 4], gzip 4, chunks (10, 4): the chunk of rows 10..19
    stored raw with its filter mask saying deflate was skipped (as HDF5 does when an
    optional filter fails).
* ``corrupt_inflate.h5``, ``corrupt_short.h5``, ``corrupt_long.h5``: ``X`` uint8 [40, 6]
  (chunks (10, 6)), ``y`` int32 [40] (sound) and ``pred`` int32 [40] (chunks (10,)), both X
  and pred gzip-compressed with the chunk of rows 10..19 replaced by bytes that do not
  inflate (a zlib header then noise), that inflate to fewer bytes than the chunk holds, or to
  more.
* ``fuzz/seeds/dataset/chunked_shuffle_gzip.h5``: a seed for the dataset fuzz target, ``X``
  float32 [23, 3, 5] in shuffled gzip chunks (4, 2, 5) and ``y`` int32 in gzip chunks (6,).
"""
import os
import zlib

import h5py
import numpy as np

OUT = os.path.join("tests", "fixtures", "chunks")
N = 103


def with_expected(f, name, values, **kwargs):
    f.create_dataset(name, data=values, **kwargs)
    f.create_dataset(name + "_expected", data=values)


def write_chunks(rng):
    with h5py.File(os.path.join(OUT, "chunks.h5"), "w") as f:
        u8 = rng.integers(0, 256, size=(N, 5, 7), dtype=np.uint8)
        with_expected(f, "u8_gzip1", u8, chunks=(10, 2, 3), compression="gzip",
                      compression_opts=1)
        with_expected(f, "u8_gzip9_shuffle", u8[::-1].copy(), chunks=(16, 5, 7),
                      compression="gzip", compression_opts=9, shuffle=True)
        # Smooth values compress; the noise keeps every byte plane busy.
        f32 = (np.sin(np.arange(N * 13, dtype=np.float32) / 9) * 100).reshape(N, 13)
        f32 += rng.standard_normal((N, 13)).astype(np.float32)
        with_expected(f, "f32_gzip9_shuffle", f32, chunks=(7, 4), compression="gzip",
                      compression_opts=9, shuffle=True)
        with_expected(f, "f32_gzip1", -f32, chunks=(50, 13), compression="gzip",
                      compression_opts=1)
        i32 = rng.integers(-(2**31), 2**31 - 1, size=(N, 3, 3), dtype=np.int32)
        with_expected(f, "i32_gzip6_shuffle", i32, chunks=(1, 3, 3), compression="gzip",
                      compression_opts=6, shuffle=True)
        y = rng.integers(0, 10, size=N, dtype=np.int32)
        with_expected(f, "y", y, chunks=(8,), compression="gzip", compression_opts=9,
                      shuffle=True)
        with_expected(f, "y_wide_chunk", y[::-1].copy(), chunks=(256,), maxshape=(None,),
                      compression="gzip", compression_opts=1)

        partial = np.full((N, 4), -3.5, dtype=np.float32)
        partial[0:30] = rng.standard_normal((30, 4)).astype(np.float32)
        partial[60:70] = rng.standard_normal((10, 4)).astype(np.float32)
        d = f.create_dataset("partial", (N, 4), dtype=np.float32, chunks=(10, 4),
                             compression="gzip", compression_opts=4, fillvalue=-3.5)
        d[0:30] = partial[0:30]
        d[60:70] = partial[60:70]
        f.create_dataset("partial_expected", data=partial)

        skipped = rng.standard_normal((30, 4)).astype(np.float32)
        d = f.create_dataset("skipped_filter", data=skipped, chunks=(10, 4),
                             compression="gzip", compression_opts=4)
        d.id.write_direct_chunk((10, 0), skipped[10:20].tobytes(), filter_mask=1)
        f.create_dataset("skipped_filter_expected", data=skipped)


def write_corrupt(rng, kind):
    def bad_chunk(chunk_bytes):
        if kind == "inflate":
            return b"\x78\x9c" + rng.integers(0, 256, size=40, dtype=np.uint8).tobytes()
        wrong = chunk_bytes - 10 if kind == "short" else chunk_bytes + 10
        return zlib.compress(bytes(range(wrong % 256)) * (wrong // 256) + bytes(wrong % 256))

    with h5py.File(os.path.join(OUT, f"corrupt_{kind}.h5"), "w") as f:
        x = f.create_dataset("X", data=rng.integers(0, 256, size=(40, 6), dtype=np.uint8),
                             chunks=(10, 6), compression="gzip", compression_opts=4)
        x.id.write_direct_chunk((10, 0), bad_chunk(60), filter_mask=0)
        f.create_dataset("y", data=np.arange(40, dtype=np.int32) % 3)
        pred = f.create_dataset("pred", data=np.arange(40, dtype=np.int32) % 3, chunks=(10,),
                                compression="gzip", compression_opts=4)
        pred.id.write_direct_chunk((10,), bad_chunk(40), filter_mask=0)


def write_fuzz_seed():
    rng = np.random.default_rng(5)
    path = os.path.join("fuzz", "seeds", "dataset", "chunked_shuffle_gzip.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("X", data=rng.integers(0, 50, size=(23, 3, 5)).astype(np.float32),
                         chunks=(4, 2, 5), compression="gzip", compression_opts=1, shuffle=True)
        f.create_dataset("y", data=rng.integers(0, 4, size=23).astype(np.int32), chunks=(6,),
                         compression="gzip", compression_opts=9)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(12)
    write_chunks(rng)
    for kind in ("inflate", "short", "long"):
        write_corrupt(rng, kind)
    write_fuzz_seed()


if __name__ == "__main__":
    main()
