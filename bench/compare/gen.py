#!/usr/bin/python3
"""Seeded trees for the side-by-side suite, and the mutation step.

  gen.py tree DIR [--seed S] [--files N] [--mb M] [--large K] [--large-mb L]
      many small files in nested directories plus K large ones, about M MB
      in all (random, incompressible content)
  gen.py real DIR
      a copy of /usr/share/doc and /usr/include (a tree no one here wrote)
  gen.py mutate DIR [--seed S]
      1% of the files changed, 0.5% added, 0.5% deleted, 0.1% renamed;
      prints a JSON summary (entries and bytes that changed)
  gen.py big DIR --mb 1024 / gen.py poke FILE --offset-mb 512 --mb 1
      one large file, and an overwrite of a range in its middle
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys

BLOCK = 128 * 1024


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _small_size(rng, mean):
    # Log-normal sizes: most files a few KiB, a tail up to a few hundred KiB.
    s = int(rng.lognormvariate(0, 1.2) * mean / 2.05)
    return max(0, min(s, 1024 * 1024))


def make_tree(root, seed=1, files=20000, mb=430, large=10, large_mb=8):
    rng = random.Random(seed)
    large_bytes = large * large_mb * 1024 * 1024
    small = files - large
    mean = max(1, (mb * 1000 * 1000 - large_bytes) // max(1, small))
    total = 0
    # Nested directories: ~40 files each, up to four levels deep.
    dirs = [""]
    n_dirs = max(1, small // 40)
    for i in range(n_dirs):
        parent = rng.choice(dirs) if len(dirs) < 8 or rng.random() < 0.7 else ""
        if parent.count("/") >= 3:
            parent = ""
        dirs.append(os.path.join(parent, f"d{i:04d}"))
    for i in range(small):
        d = rng.choice(dirs[1:] or dirs)
        size = _small_size(rng, mean)
        _write(os.path.join(root, d, f"f{i:06d}.dat"), rng.randbytes(size))
        total += size
    for i in range(large):
        _write(os.path.join(root, "large", f"big{i:02d}.bin"),
               rng.randbytes(large_mb * 1024 * 1024))
        total += large_mb * 1024 * 1024
    return {"files": files, "bytes": total, "dirs": len(dirs)}


def copy_real(root):
    os.makedirs(root, exist_ok=True)
    for src in ("/usr/share/doc", "/usr/include"):
        subprocess.run(["cp", "-a", src, os.path.join(root, os.path.basename(src))],
                       check=True)
    # Files only root may read, sockets and the like would make tools differ
    # for reasons that are not sync: keep regular files, dirs and symlinks.
    n, b = 0, 0
    for dp, dn, fn in os.walk(root):
        for f in fn:
            p = os.path.join(dp, f)
            st = os.lstat(p)
            n += 1
            if not os.path.islink(p):
                b += st.st_size
    return {"files": n, "bytes": b}


def list_files(root):
    out = []
    for dp, dn, fn in os.walk(root):
        dn.sort()
        for f in sorted(fn):
            p = os.path.join(dp, f)
            if os.path.isfile(p) and not os.path.islink(p):
                out.append(os.path.relpath(p, root))
    return out


def mutate(root, seed=2, changed=0.01, added=0.005, deleted=0.005, renamed=0.001):
    """Changes files in place the way an application would (write a new file,
    rename it over the old one, or overwrite a range of a large file)."""
    rng = random.Random(seed)
    files = list_files(root)
    n = len(files)
    rng.shuffle(files)
    k_ch, k_add, k_del, k_ren = (max(1, int(n * x)) if x else 0
                                 for x in (changed, added, deleted, renamed))
    ch = files[:k_ch]
    de = files[k_ch:k_ch + k_del]
    rn = files[k_ch + k_del:k_ch + k_del + k_ren]
    changed_bytes = 0
    sizes = [os.path.getsize(os.path.join(root, f)) for f in files[:200]]
    mean = max(1, sum(sizes) // max(1, len(sizes)))
    for f in ch:
        p = os.path.join(root, f)
        size = os.path.getsize(p)
        if size > 4 * BLOCK:
            # A large file: 64 KiB overwritten at a random place.
            off = rng.randrange(0, size - 65536)
            with open(p, "r+b") as fh:
                fh.seek(off)
                fh.write(rng.randbytes(65536))
            changed_bytes += 65536
        else:
            data = rng.randbytes(max(1, int(size * rng.uniform(0.8, 1.2))))
            tmp = p + ".tmp-gen"
            _write(tmp, data)
            os.rename(tmp, p)
            changed_bytes += len(data)
    for f in de:
        os.unlink(os.path.join(root, f))
    renamed_bytes = 0
    for f in rn:
        p = os.path.join(root, f)
        renamed_bytes += os.path.getsize(p)
        os.rename(p, p + ".renamed")
    added_bytes = 0
    dirs = sorted({os.path.dirname(f) for f in files})
    for i in range(k_add):
        d = rng.choice(dirs)
        data = rng.randbytes(_small_size(rng, mean))
        _write(os.path.join(root, d, f"new{seed}_{i:05d}.dat"), data)
        added_bytes += len(data)
    return {
        "files_before": n, "changed": k_ch, "added": k_add, "deleted": k_del,
        "renamed": k_ren, "changed_bytes": changed_bytes, "added_bytes": added_bytes,
        "renamed_bytes": renamed_bytes,
        # Entries that must cross: changed, added, deleted, and a rename is a
        # delete plus an add.
        "entries": k_ch + k_add + k_del + 2 * k_ren,
        "content_bytes": changed_bytes + added_bytes + renamed_bytes,
    }


def make_big(root, mb=1024, seed=3):
    rng = random.Random(seed)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "big.bin"), "wb") as f:
        for _ in range(mb):
            f.write(rng.randbytes(1024 * 1024))


def poke(path, offset_mb, mb=1, seed=4):
    rng = random.Random(seed)
    with open(path, "r+b") as f:
        f.seek(offset_mb * 1024 * 1024)
        f.write(rng.randbytes(mb * 1024 * 1024))
    return {"changed_bytes": mb * 1024 * 1024, "entries": 1}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["tree", "real", "mutate", "big", "poke"])
    ap.add_argument("path")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--mb", type=int, default=430)
    ap.add_argument("--large", type=int, default=10)
    ap.add_argument("--large-mb", type=int, default=8)
    ap.add_argument("--offset-mb", type=int, default=512)
    a = ap.parse_args()
    if a.cmd == "tree":
        r = make_tree(a.path, a.seed, a.files, a.mb, a.large, a.large_mb)
    elif a.cmd == "real":
        r = copy_real(a.path)
    elif a.cmd == "mutate":
        r = mutate(a.path, a.seed)
    elif a.cmd == "big":
        r = make_big(a.path, a.mb, a.seed) or {}
    else:
        r = poke(a.path, a.offset_mb, a.mb, a.seed)
    json.dump(r, sys.stdout)
    print()


if __name__ == "__main__":
    main()
