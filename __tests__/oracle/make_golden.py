"""Regenerates the golden CLaRa files in __tests__/fixtures/golden/ (what golden.test.ts compares
against), as llm.c's test_gpt2 compares against PyTorch: the numbers come from another
implementation, the Python MLX peer of bench:clara (bench/peers/mlx_clara_step.py, mlx-lm's
model with multi-adapter LoRA, nn.value_and_grad, optim.clip_grad_norm, optim.AdamW).

For stages 1, 2 and 3 on a tiny Llama it records, per optimizer update of a short run on one
batch: the loss and its parts (ce, mse), the gradient norm before clipping and the lr; the gradient
of every trained tensor at the starting parameters (grads.npz); and the trained tensors after the
last update (after.npz). The schedule (warmup steps, cosine with a floor) is computed here from
the options runStage receives, the way Hugging Face's get_cosine_with_min_lr_schedule_with_warmup
does, not taken from our code.

usage (from the package root, after `npm run build`):
    .venv/bin/python __tests__/oracle/make_golden.py [--out __tests__/fixtures/golden]
"""

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench", "peers"))
from mlx_clara_step import CHECK_TOLERANCE, build, cosine, load_case, set_trainable  # noqa: E402

CASE_WRITER = os.path.join(ROOT, "dist", "__tests__", "oracle", "golden-cases.js")
COPIED = ["records.jsonl", "batch.npz", "params.npz"]
# Float32 rounding moves scores by ~1e-7; a gap far above it keeps the hard top-k choice stable.
MIN_TOPK_GAP = 1e-4


def our_name(key):
    """The package's parameter name of a peer parameter path."""
    if key == "mem_embeddings":
        return "clara.mem_embeddings"
    m = re.fullmatch(r"lm\.(model\.layers\.\d+\.\w+\.\w+)\.adapters\.(\w+)\.lora_([ab])", key)
    if not m:
        raise SystemExit(f"no package name for the peer parameter {key}")
    return f"{m.group(1)}.lora.{m.group(2)}.{m.group(3)}"


def schedule(meta):
    """runStage's update count and warmup, and the lr of each update (0-based step)."""
    t = meta["train"]
    per_epoch = max(1, t["records"] // t["batchSize"])
    total = max(1, math.ceil(t["epochs"] * per_epoch))
    lr = meta["lr"]
    if t["schedule"] == "constant":
        return total, 0, [lr] * total
    warmup = math.ceil(t["warmupRatio"] * total)

    def at(step):
        if step < warmup:
            return lr * step / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return lr * (t["minLrRatio"] + (1 - t["minLrRatio"]) * 0.5 * (1 + math.cos(math.pi * progress)))

    return total, warmup, [at(s) for s in range(total)]


def topk_gap(model, meta, inputs):
    """Smallest gap between consecutive scores among each question's k+1 best candidates."""
    n, k = meta["nMem"], meta["k"]
    q_ids, q_valid, c_ids, c_valid = inputs[5:]
    q, _ = model.compress(q_ids, q_valid, n, meta["adapters"]["queryReasoner"])
    docs, _ = model.compress(c_ids, c_valid, n, meta["adapters"]["compressor"])
    B = q.shape[0]
    scores = np.array(cosine(q.reshape(B, -1), docs.reshape(B, c_ids.shape[0] // B, -1)))
    top = -np.sort(-scores, axis=-1)[:, : k + 1]
    return float(np.min(top[:, :-1] - top[:, 1:]))


def golden_stage(case_dir):
    meta, params, batch = load_case(case_dir)
    if meta["train"]["microBatchSize"] != meta["train"]["batchSize"]:
        raise SystemExit("the golden cases run one micro-batch per update; this peer computes the loss of the whole batch")
    model, inputs, loss_fn = build(meta, params, batch)
    model.eval()  # LoRA dropout is 0 in these cases; eval() makes it so whatever the module thinks

    total, warmup, lrs = schedule(meta)
    trainable = set_trainable(model, meta)
    adamw = meta["adamw"]
    optimizer = optim.AdamW(learning_rate=lrs[0], betas=[adamw["beta1"], adamw["beta2"]], eps=adamw["eps"],
                            weight_decay=adamw["weightDecay"], bias_correction=True)
    loss_and_grad = nn.value_and_grad(model, loss_fn)

    updates, grads0, gaps = [], None, []
    for step in range(total):
        if meta["stage"] == 3:
            gaps.append(topk_gap(model, meta, inputs))
        (loss, ce, mse), grads = loss_and_grad(model, *inputs)
        clipped, norm = optim.clip_grad_norm(grads, meta["maxGradNorm"])
        optimizer.learning_rate = lrs[step]
        optimizer.update(model, clipped)
        mx.eval(model.parameters(), optimizer.state, loss, ce, mse, norm, grads)
        if step == 0:
            grads0 = {our_name(k): np.array(v, dtype=np.float32) for k, v in tree_flatten(grads)}
            rel = abs(loss.item() / meta["expected"]["loss"] - 1)
            if not rel <= CHECK_TOLERANCE:
                raise SystemExit(f"stage {meta['stage']}: the peer's loss {loss.item()} is not ours ({meta['expected']['loss']}): "
                                 f"the case and the peer disagree on the forward pass; fix that before writing golden numbers")
        updates.append({
            "loss": loss.item(),
            "ce": ce.item(),
            "mse": mse.item() if meta["stage"] != 3 else None,
            "gradNorm": norm.item(),
            "lr": lrs[step],
        })
    if gaps and min(gaps) < MIN_TOPK_GAP:
        raise SystemExit(f"stage 3: two of the top-{meta['k']} scores are {min(gaps):.2e} apart; pick other records or seeds")
    after = {our_name(k): np.array(v, dtype=np.float32) for k, v in tree_flatten(model.trainable_parameters())}
    golden = {
        "peer": f"mlx {mx.__version__}, mlx-lm {__import__('mlx_lm').__version__}, bench/peers/mlx_clara_step.py",
        "totalSteps": total,
        "warmupSteps": warmup,
        "trainableParameters": trainable,
        "trainableTensors": len(after),
        "updates": updates,
        **({"topkMinGap": min(gaps)} if gaps else {}),
    }
    return meta, golden, grads0, after


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "__tests__", "fixtures", "golden"))
    a = ap.parse_args(argv)
    if not os.path.exists(CASE_WRITER):
        raise SystemExit(f"{os.path.relpath(CASE_WRITER, ROOT)} is missing: run `npm run build` first")
    work = tempfile.mkdtemp(prefix="clara-golden-cases-")
    try:
        subprocess.run(["node", CASE_WRITER, work], check=True, cwd=ROOT)
        for stage in (1, 2, 3):
            case = os.path.join(work, f"stage{stage}")
            meta, golden, grads, after = golden_stage(case)
            dest = os.path.join(a.out, f"stage{stage}")
            os.makedirs(dest, exist_ok=True)
            for f in COPIED:
                shutil.copyfile(os.path.join(case, f), os.path.join(dest, f))
            np.savez(os.path.join(dest, "grads.npz"), **grads)
            np.savez(os.path.join(dest, "after.npz"), **after)
            meta["model"] = "tiny (tinyModel; rebuilt by __tests__/helpers/golden.ts)"
            meta["golden"] = golden
            with open(os.path.join(dest, "meta.json"), "w") as f:
                json.dump(meta, f, indent=2)
                f.write("\n")
            print(f"stage {stage}: " + json.dumps({k: v for k, v in golden.items() if k != "peer"}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
