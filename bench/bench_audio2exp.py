"""Audio-to-expression inference speed and memory on CPU.

    python bench/bench_audio2exp.py [--model builtin] [--threads 2] [--seconds 30] [--long-minutes 10]

Prints the real-time factor (audio seconds per compute second) of ``audio2exp.predict`` on
synthetic speech (features + network + resampling to 25 fps; rendering excluded), of the
streaming predictor fed 100 ms pieces, the streaming look-ahead, and the peak resident memory
while predicting a ``--long-minutes`` recording (chunked inference).
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="builtin")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--long-minutes", type=float, default=10.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import face3d
    from audio2exp.api import StreamingPredictor, load_predictor
    from audio2exp.corpus import CorpusConfig, generate_corpus
    from audio2exp.features import resample

    model = face3d.load_model(args.model)
    pred = load_predictor(model)
    parts, total = [], 0.0
    for u in generate_corpus(CorpusConfig(n_utterances=200, seed=99, split="heldout")):
        parts.append(resample(u.audio, u.sample_rate, 16000))
        total += u.duration
        if total >= args.seconds:
            break
    audio = np.concatenate(parts)
    dur = len(audio) / 16000
    pred(audio[:16000], 16000)  # warm-up
    best = cpu = float("inf")
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        pred(audio, 16000)
        best, cpu = min(best, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    # CPU time as well as wall time: on a shared machine the wall time includes waiting for a core.
    print(f"offline predict: {dur:.1f} s of audio in {best:.3f} s wall ({cpu:.3f} s CPU) -> {dur / best:.0f}x real time "
          f"wall, {dur / cpu:.0f}x per CPU-second ({args.threads} threads)")

    sp = StreamingPredictor(pred)
    t0 = time.perf_counter()
    n = 0
    for s in range(0, len(audio), 1600):
        n += len(sp.push(audio[s:s + 1600]).get("jaw", []))
    n += len(sp.flush().get("jaw", []))
    t = time.perf_counter() - t0
    print(f"streaming (100 ms pieces): {n} frames, {dur / t:.0f}x real time, look-ahead {sp.lookahead_ms:.0f} ms")

    long = np.tile(audio, int(np.ceil(args.long_minutes * 60 / dur)))[: int(args.long_minutes * 60 * 16000)]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    seq = pred(long, 16000)
    t = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.long_minutes:.0f}-minute recording: {len(seq['jaw'])} frames in {t:.1f} s "
          f"({len(long) / 16000 / t:.0f}x real time), peak RSS {rss:.0f} MiB (before: {rss0:.0f} MiB)")


if __name__ == "__main__":
    main()
