#!/usr/bin/env python3
"""numpy (float32 matmul) GFLOP/s for the shapes of `chimera bench gemm`, as JSON lines.

usage: gemm_numpy.py [--shapes 1024x1024x1024,...] [--threads 1,2] [--seconds 0.5]
Threads are set with threadpoolctl when installed, else by re-running this script with
OPENBLAS_NUM_THREADS (and friends) set, since BLAS libraries read those at load time.
"""
import argparse
import json
import os
import subprocess
import sys
import time

DEFAULT_SHAPES = "1024x1024x1024,512x3072x768,1x4096x4096"
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def blas_name():
    """The BLAS shared library this process has mapped (after numpy has run a matmul)."""
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                base = os.path.basename(path)
                if any(t in base.lower() for t in ("blas", "mkl", "blis")):
                    libs.add(base)
    except OSError:
        pass
    return ",".join(sorted(libs)) or "unknown"


def measure(shapes, threads, seconds):
    import numpy as np

    rng = np.random.default_rng(0)
    for m, n, k in shapes:
        a = rng.uniform(-1, 1, (m, k)).astype(np.float32)
        b = rng.uniform(-1, 1, (k, n)).astype(np.float32)
        c = np.empty((m, n), dtype=np.float32)
        np.matmul(a, b, out=c)
        w0 = time.perf_counter()
        while time.perf_counter() - w0 < min(0.2, seconds / 2):
            np.matmul(a, b, out=c)
        reps, best = 0, float("inf")
        t0 = now = time.perf_counter()
        while now - t0 < seconds or reps < 3:
            s = now
            np.matmul(a, b, out=c)
            now = time.perf_counter()
            best = min(best, now - s)
            reps += 1
        flop = 2.0 * m * n * k
        print(json.dumps({
            "m": m, "n": n, "k": k, "threads": threads,
            "gflops": round(flop * reps / (now - t0) / 1e9, 1), "best": round(flop / best / 1e9, 1),
            "reps": reps, "numpy": np.__version__, "blas": blas_name(),
        }), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default=DEFAULT_SHAPES)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",") if s]
    if args.child:
        measure(shapes, args.child, args.seconds)
        return
    threads = [int(t) for t in args.threads.split(",") if t]
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    for t in threads:
        if threadpool_limits is not None:
            with threadpool_limits(limits=t, user_api="blas"):
                measure(shapes, t, args.seconds)
        else:
            env = dict(os.environ)
            for v in THREAD_VARS:
                env[v] = str(t)
            cmd = [sys.executable, __file__, "--shapes", args.shapes, "--seconds", str(args.seconds), "--child", str(t)]
            r = subprocess.run(cmd, env=env)
            if r.returncode != 0:
                sys.exit(r.returncode)


if __name__ == "__main__":
    main()
