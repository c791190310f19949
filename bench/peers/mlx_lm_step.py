"""The peer of bench/step.ts: the same LoRA training step written the way a mlx-lm user
writes it (mlx_lm.tuner: LoRA on every linear but lm_head, rank 16, scale 2.0, dropout 0.1,
AdamW with bias correction, the compiled step of mlx_lm.tuner.trainer), on the same weights,
batch and dtype. Prints one JSON object.

usage: python mlx_lm_step.py MODEL --batch 4 --seq 512 --steps 3 --warmup 1 --seed 0
"""

import argparse
import json
import os
import sys
import time
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten

# The correctness oracle's loader (GGUF dequantisation and q/k un-permutation, or mlx_lm.load).
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "__tests__", "oracle"))
from mlx_lm_oracle import load_model  # noqa: E402
from mlx_lm.tuner.utils import linear_to_lora_layers  # noqa: E402


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compile", type=int, default=1)
    a = ap.parse_args(argv)

    mx.random.seed(a.seed)
    model = load_model(a.model)
    model.freeze()
    keys = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
            "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
    linear_to_lora_layers(model, len(model.layers), {"rank": 16, "scale": 2.0, "dropout": 0.1, "keys": keys})
    model.train()
    trainable = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))

    vocab = model.args.vocab_size
    tokens = mx.random.randint(0, vocab, (a.batch, a.seq), key=mx.random.key(a.seed))

    def loss_fn(model, x):
        logits = model(x[:, :-1])
        return nn.losses.cross_entropy(logits, x[:, 1:], reduction="mean")

    optimizer = optim.AdamW(learning_rate=1e-4, betas=[0.9, 0.95], eps=1e-8, weight_decay=0.0, bias_correction=True)
    loss_and_grad = nn.value_and_grad(model, loss_fn)
    state = [model.state, optimizer.state, mx.random.state]

    def step(x):
        loss, grads = loss_and_grad(model, x)
        grads, _ = optim.clip_grad_norm(grads, 1.0)
        optimizer.update(model, grads)
        return loss

    if a.compile:
        step = partial(mx.compile, inputs=state, outputs=state)(step)

    times = []
    for i in range(a.warmup + a.steps):
        mx.reset_peak_memory()
        t0 = time.perf_counter()
        loss = step(tokens)
        mx.eval(state, loss)
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    print(json.dumps({
        "peer": "mlx-lm " + __import__("mlx_lm").__version__ + ", mlx " + mx.__version__,
        "compiled": bool(a.compile),
        "trainable": trainable,
        "seconds": times,
        "loss": loss.item(),
        "peakMemory": mx.get_peak_memory(),
    }))


if __name__ == "__main__":
    main(sys.argv[1:])
