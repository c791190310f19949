"""Python mlx-lm as the correctness oracle for the transformer core (__tests__/model.test.ts).

Subcommands (all inputs and outputs are files; nothing is read from our own code):

  make-tiny --type llama|mistral|qwen2|qwen3 --out DIR [--tie] [--rope-scaling llama3|linear]
            [--attention-bias] [--seed N] [--drop-tensor NAME]
      A tiny random model built with mlx-lm's own model classes, saved as a Hugging Face
      folder: config.json, model.safetensors (HF tensor names), tokenizer.json (a byte-level
      BPE over exactly vocab_size ids) and tokenizer_config.json (ChatML template).
      --drop-tensor leaves one tensor out of model.safetensors (for the loader's error test).

  logits --model PATH --ids FILE.json --out FILE.npy
      FILE.json holds a list of token-id lists. Writes float32 logits of every sequence run
      alone (no padding), concatenated along the token axis: [sum of lengths, vocab].
      PATH is a Hugging Face folder (mlx_lm.load) or a .gguf file (an mlx-lm llama Model built
      here from the GGUF metadata and dequantized weights).

  generate --model PATH --ids FILE.json --max-tokens N --out FILE.json
      Greedy (argmax) decoding of N tokens per prompt with mlx-lm's generate_step and its KV
      cache; no stop tokens. Writes a list of token-id lists.

  merge-lora --model DIR --adapters FILE.npz --name NAME --out DIR
      Copies the Hugging Face folder DIR to --out with adapter NAME of an adapter file written
      by Model.saveAdapters merged into the weights: W + (alpha / rank) * (A @ B).T, A [in, r],
      B [r, out]. The merged folder's logits are what the adapter's forward must give.

  quantize --model DIR --bits 4|8 --group-size N --out DIR [--projections-only]
      mlx-lm's own converter (mlx_lm.convert, as mlx-community publishes quantized models):
      DIR's float weights into affine groups (weight + scales + biases, "quantization" in
      config.json), embeddings included unless --projections-only (then config.json marks
      embed_tokens / lm_head false, as mlx-lm's predicates write it).
"""

import argparse
import json
import os
import sys

import mlx.core as mx
import numpy as np

HIDDEN = 64
LAYERS = 2
HEADS = 4
KV_HEADS = 2
HEAD_DIM = HIDDEN // HEADS
INTERMEDIATE = 128
VOCAB = 300
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# A fixed corpus for the merges: the tokenizer only has to be valid and deterministic.
CORPUS = (
    "the quick brown fox jumps over the lazy dog. the model reads the text and then the answer "
    "is written in the same way. there is another question: where is the river? the river is "
    "near the tower, and the tower is in the north of the town. retrieval then generation."
)


# --------------------------------------------------------------------------------------------
# Tokenizer


def bytes_to_unicode():
    """GPT-2's byte -> printable character table (what ByteLevel pre-tokenization uses)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def train_merges(count):
    """Plain BPE on the corpus's words (GPT-2 style, a space joins the following word)."""
    table = bytes_to_unicode()
    words = {}
    for i, w in enumerate(CORPUS.split(" ")):
        text = (" " if i else "") + w
        key = tuple(table[b] for b in text.encode("utf-8"))
        words[key] = words.get(key, 0) + 1
    merges = []
    for _ in range(count):
        pairs = {}
        for word, n in words.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))  # most frequent, ties by the pair itself
        merges.append(best)
        merged = {}
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + n
        words = merged
    return merges


def write_tokenizer(out_dir, vocab_size):
    """Specials at ids 0..2, the 256 byte tokens next, then merged tokens up to vocab_size."""
    vocab = {}
    for i, s in enumerate(SPECIALS):
        vocab[s] = i
    for ch in bytes_to_unicode().values():
        vocab[ch] = len(vocab)
    merges = train_merges(vocab_size - len(vocab))
    for a, b in merges:
        vocab[a + b] = len(vocab)
    if len(vocab) != vocab_size:
        raise SystemExit(f"tokenizer has {len(vocab)} ids, config wants {vocab_size}")
    added = [
        {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
        for i, s in enumerate(SPECIALS)
    ]
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [[a, b] for a, b in merges],
        },
    }
    config = {
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(t["id"]): {k: v for k, v in t.items() if k != "id"} for t in added
        },
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "chat_template": CHATML,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 2048,
        "tokenizer_class": "GPT2Tokenizer",
        "vocab_size": vocab_size,
    }
    with open(os.path.join(out_dir, "tokenizer.json"), "w") as f:
        json.dump(tokenizer, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, ensure_ascii=False, indent=2)


# --------------------------------------------------------------------------------------------
# make-tiny


def tiny_config(model_type, tie, rope_scaling, attention_bias=False):
    config = {
        "architectures": [{"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM",
                           "qwen3": "Qwen3ForCausalLM"}[model_type]],
        "model_type": model_type,
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM,
        "vocab_size": VOCAB,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "max_position_embeddings": 2048,
        "tie_word_embeddings": bool(tie),
        "hidden_act": "silu",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "float32",
    }
    if model_type == "llama":
        config["attention_bias"] = bool(attention_bias)
        config["mlp_bias"] = False
    if model_type == "qwen3":
        config["attention_bias"] = False
    if model_type == "mistral":
        config["sliding_window"] = None
    # Small original contexts so that the scaling changes most frequencies of a 16-dim head.
    if rope_scaling == "llama3":
        config["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                  "original_max_position_embeddings": 64}
    elif rope_scaling == "linear":
        config["rope_scaling"] = {"rope_type": "linear", "factor": 4.0}
    return config


def model_classes(model_type):
    import importlib

    module = importlib.import_module("mlx_lm.models." + {"mistral": "llama"}.get(model_type, model_type))
    return module.Model, module.ModelArgs


def randomize(model, seed, tie):
    """Deterministic weights, larger than the default init so that logits are far from flat. A
    tied table is kept small next to the layers' outputs, or every token would predict itself."""
    from mlx.utils import tree_flatten, tree_unflatten

    key = mx.random.key(seed)
    new = []
    for name, p in sorted(tree_flatten(model.parameters()), key=lambda kv: kv[0]):
        key, sub = mx.random.split(key)
        if name.endswith("norm.weight"):
            v = 1.0 + 0.2 * mx.random.normal(p.shape, key=sub)
        elif name.endswith(".bias"):
            v = 0.2 * mx.random.normal(p.shape, key=sub)
        elif "embed_tokens" in name:
            v = (0.4 if tie else 1.0) * mx.random.normal(p.shape, key=sub)
        elif name == "lm_head.weight":
            v = 2.0 * mx.random.normal(p.shape, key=sub) / np.sqrt(p.shape[1])
        else:  # projections [out, in]
            v = 1.5 * mx.random.normal(p.shape, key=sub) / np.sqrt(p.shape[1])
        new.append((name, v.astype(mx.float32)))
    model.update(tree_unflatten(new))
    mx.eval(model.parameters())


def cmd_make_tiny(args):
    from mlx.utils import tree_flatten

    os.makedirs(args.out, exist_ok=True)
    if args.attention_bias and args.type != "llama":
        raise SystemExit("--attention-bias is for llama (qwen2 always has q/k/v biases)")
    config = tiny_config(args.type, args.tie, args.rope_scaling, args.attention_bias)
    Model, ModelArgs = model_classes(args.type)
    model = Model(ModelArgs.from_dict(config))
    randomize(model, args.seed, args.tie)
    weights = dict(tree_flatten(model.parameters()))
    if args.tie and "lm_head.weight" in weights:
        raise SystemExit("a tied model must have no lm_head.weight")
    if not args.tie and "lm_head.weight" not in weights:
        raise SystemExit("an untied model must have lm_head.weight")
    if args.drop_tensor:
        if args.drop_tensor not in weights:
            raise SystemExit(f"--drop-tensor: no tensor {args.drop_tensor}")
        del weights[args.drop_tensor]
    mx.save_safetensors(os.path.join(args.out, "model.safetensors"), weights, metadata={"format": "mlx"})
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    write_tokenizer(args.out, config["vocab_size"])


# --------------------------------------------------------------------------------------------
# Loading models: HF folders through mlx_lm.load, GGUF files through our own reading of them


def scalar(v):
    if isinstance(v, mx.array):
        return v.item()
    return v


def unpermute(w, n_head):
    """Inverse of llama.cpp convert_hf_to_gguf's permute(): rows [n_head, 2, d/2] came from
    [n_head, d/2, 2] (HF's rotate-half layout -> GGML's interleaved one)."""
    out = w.shape[0]
    rest = w.shape[1:]
    r = w.reshape(n_head, out // n_head // 2, 2, *rest)
    return r.swapaxes(1, 2).reshape(out, *rest)


GGUF_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
}


def hf_name(gguf_name):
    top = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
           "output.weight": "lm_head.weight"}
    if gguf_name in top:
        return top[gguf_name]
    parts = gguf_name.split(".")
    if len(parts) == 4 and parts[0] == "blk" and parts[2] in GGUF_NAMES:
        return f"model.layers.{parts[1]}.{GGUF_NAMES[parts[2]]}.{parts[3]}"
    return None


def load_gguf(path):
    raw, meta = mx.load(path, return_metadata=True)
    arch = str(meta["general.architecture"])
    if arch not in ("llama", "mistral", "qwen2", "qwen3"):
        raise SystemExit(f"unsupported GGUF architecture {arch}")

    def m(key, default=None):
        v = meta.get(f"{arch}.{key}", default)
        if v is None:
            raise SystemExit(f"GGUF metadata has no {arch}.{key}")
        return scalar(v)

    heads = int(m("attention.head_count"))
    kv_heads = int(m("attention.head_count_kv", heads))
    hidden = int(m("embedding_length"))
    vocab = meta.get(f"{arch}.vocab_size")
    vocab = int(scalar(vocab)) if vocab is not None else len(meta["tokenizer.ggml.tokens"])
    # Weights come from gguf-py (llama.cpp's own reader and dequantiser), not from MLX's GGUF
    # path, so the oracle checks our dequantisation instead of sharing it.
    import gguf

    weights = {}
    for t in gguf.GGUFReader(path).tensors:
        ours = hf_name(t.name)
        if ours is None:
            continue
        values = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        weights[ours] = mx.array(values.reshape([int(d) for d in reversed(t.shape)]))
    if arch in ("llama", "mistral"):
        for name in list(weights):
            if name.endswith("self_attn.q_proj.weight") or name.endswith("self_attn.q_proj.bias"):
                weights[name] = unpermute(weights[name], heads)
            elif name.endswith("self_attn.k_proj.weight") or name.endswith("self_attn.k_proj.bias"):
                weights[name] = unpermute(weights[name], kv_heads)
    args = {
        "model_type": arch,
        "hidden_size": hidden,
        "num_hidden_layers": int(m("block_count")),
        "intermediate_size": int(m("feed_forward_length")),
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": int(m("attention.key_length", hidden // heads)),
        "rms_norm_eps": float(m("attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": float(m("rope.freq_base", 10000.0)),
        "vocab_size": vocab,
        "max_position_embeddings": int(m("context_length", 2048)),
        "tie_word_embeddings": "lm_head.weight" not in weights,
    }
    if arch == "qwen2":
        args["attention_bias"] = True
    Model, ModelArgs = model_classes(arch)
    model = Model(ModelArgs.from_dict(args))
    model.load_weights(list(weights.items()), strict=True)
    mx.eval(model.parameters())
    return model


def load_model(path):
    if path.endswith(".gguf"):
        return load_gguf(path)
    from mlx_lm import load

    model, _tokenizer = load(path)  # the tokenizer too: our tiny tokenizers must load in transformers
    return model


def read_ids(file):
    with open(file) as f:
        ids = json.load(f)
    if not isinstance(ids, list) or not all(isinstance(s, list) and s for s in ids):
        raise SystemExit(f"{file}: expected a list of non-empty token-id lists")
    return ids


def cmd_logits(args):
    model = load_model(args.model)
    out = []
    for seq in read_ids(args.ids):
        logits = model(mx.array([seq], dtype=mx.int32))[0].astype(mx.float32)
        mx.eval(logits)
        out.append(np.array(logits))
    np.save(args.out, np.concatenate(out, axis=0).astype(np.float32))


def cmd_generate(args):
    from mlx_lm.generate import generate_step

    model = load_model(args.model)
    greedy = lambda logprobs: mx.argmax(logprobs, axis=-1)
    result = []
    for seq in read_ids(args.ids):
        tokens = []
        for token, _ in generate_step(mx.array(seq, dtype=mx.int32), model, max_tokens=args.max_tokens, sampler=greedy):
            tokens.append(int(token))
        result.append(tokens)
    with open(args.out, "w") as f:
        json.dump(result, f)


def cmd_merge_lora(args):
    import shutil

    entries = mx.load(args.adapters)
    meta = json.loads(bytes(np.array(entries.pop("__metadata__"))).decode("utf-8"))
    info = next((a for a in meta["adapters"] if a["name"] == args.name), None)
    if info is None:
        raise SystemExit(f"{args.adapters} has no adapter {args.name}")
    scale = info["alpha"] / info["rank"]
    weights = mx.load(os.path.join(args.model, "model.safetensors"))
    marker = f".lora.{args.name}."
    merged = 0
    for key, a in entries.items():
        if marker not in key or not key.endswith(".a"):
            continue
        linear = key[: key.index(marker)]
        b = entries[linear + marker + "b"]
        w = weights[linear + ".weight"]
        weights[linear + ".weight"] = (w + scale * (a.astype(mx.float32) @ b.astype(mx.float32)).T).astype(w.dtype)
        merged += 1
    if merged == 0:
        raise SystemExit(f"{args.adapters}: adapter {args.name} has no lora tensors")
    shutil.copytree(args.model, args.out, dirs_exist_ok=True)
    mx.save_safetensors(os.path.join(args.out, "model.safetensors"), weights, metadata={"format": "mlx"})


def cmd_quantize(args):
    from mlx_lm import convert

    predicate = None
    if args.projections_only:
        predicate = lambda path, module, *config: not (path.endswith("embed_tokens") or path.endswith("lm_head"))
    convert(
        hf_path=args.model,
        mlx_path=args.out,
        quantize=True,
        q_bits=args.bits,
        q_group_size=args.group_size,
        quant_predicate=predicate,
    )


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("make-tiny")
    t.add_argument("--type", required=True, choices=["llama", "mistral", "qwen2", "qwen3"])
    t.add_argument("--out", required=True)
    t.add_argument("--tie", action="store_true")
    t.add_argument("--rope-scaling", choices=["llama3", "linear"])
    t.add_argument("--attention-bias", action="store_true", help="llama: biases on q/k/v/o_proj (HF attention_bias)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--drop-tensor")
    t.set_defaults(fn=cmd_make_tiny)
    lg = sub.add_parser("logits")
    lg.add_argument("--model", required=True)
    lg.add_argument("--ids", required=True)
    lg.add_argument("--out", required=True)
    lg.set_defaults(fn=cmd_logits)
    g = sub.add_parser("generate")
    g.add_argument("--model", required=True)
    g.add_argument("--ids", required=True)
    g.add_argument("--max-tokens", type=int, required=True)
    g.add_argument("--out", required=True)
    g.set_defaults(fn=cmd_generate)
    ml = sub.add_parser("merge-lora")
    ml.add_argument("--model", required=True)
    ml.add_argument("--adapters", required=True)
    ml.add_argument("--name", required=True)
    ml.add_argument("--out", required=True)
    ml.set_defaults(fn=cmd_merge_lora)
    q = sub.add_parser("quantize")
    q.add_argument("--model", required=True)
    q.add_argument("--bits", type=int, required=True)
    q.add_argument("--group-size", type=int, required=True)
    q.add_argument("--out", required=True)
    q.add_argument("--projections-only", action="store_true")
    q.set_defaults(fn=cmd_quantize)
    args = p.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main(sys.argv[1:])
