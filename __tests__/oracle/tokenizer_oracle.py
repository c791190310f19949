# Reference tokenizations for __tests__/tokenizer.test.ts: `tokenizer_oracle.py MODE REQUEST.json`
# prints the answer as JSON. Each mode is built without our code:
#   rust          HF tokenizers (Rust) running a tokenizer.json that we wrote
#   llamacpp-bpe  llama.cpp's BPE tokenization re-implemented from src/llama-vocab.cpp, over the
#                 vocabulary and merges the gguf package reads from the file
#   transformers  transformers' own GGUF -> tokenizer converter, and its chat template rendering
#   spm           a SentencePiece BPE model trained here, written to a GGUF with the gguf package;
#                 SentencePiece itself encodes the text between special tokens, as llama.cpp does
import json
import sys

import regex


def rust(req):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(req["file"])
    ids = [tok.encode(t, add_special_tokens=False).ids for t in req["texts"]]
    return {
        "ids": ids,
        "ids_special": [tok.encode(t, add_special_tokens=True).ids for t in req["texts"]],
        "decoded": [tok.decode(i, skip_special_tokens=False) for i in ids],
        "skipped": [tok.decode(i, skip_special_tokens=True) for i in ids],
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
    }


# llama.cpp's regex_exprs for these tokenizer.ggml.pre values. Each splits every piece the one
# before left, and text between matches stays a piece too. Llama 3's is the original spelling.
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
LLAMA3 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
PRE = {
    "smollm": ([r"\p{N}", GPT2], False),
    "gpt-2": ([GPT2], False),
    "default": ([r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"], False),
    "llama-bpe": ([LLAMA3], True),
}
CONTROL, UNKNOWN, USER_DEFINED = 3, 2, 4


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def split_isolated(pieces, pattern):
    out = []
    for piece in pieces:
        last = 0
        for m in pattern.finditer(piece):
            if m.start() > last:
                out.append(piece[last : m.start()])
            if m.end() > m.start():
                out.append(m.group())
            last = m.end()
        if last < len(piece):
            out.append(piece[last:])
    return out


def special_split(text, tokens, types):
    """llama.cpp's tokenizer_st_partition: control, unknown and user-defined tokens stay whole."""
    specials = sorted({t for t, ty in zip(tokens, types) if ty in (CONTROL, UNKNOWN, USER_DEFINED)}, key=len, reverse=True)
    pattern = regex.compile("(" + "|".join(regex.escape(s) for s in specials) + ")")
    return [(part, i % 2 == 1) for i, part in enumerate(pattern.split(text)) if part]


def llamacpp_bpe(req):
    from gguf import GGUFReader

    fields = GGUFReader(req["gguf"]).fields
    tokens = fields["tokenizer.ggml.tokens"].contents()
    types = fields["tokenizer.ggml.token_type"].contents()
    vocab = {t: i for i, t in enumerate(tokens)}
    ranks = {}
    for i, m in enumerate(fields["tokenizer.ggml.merges"].contents()):
        cut = m.find(" ", 1)
        ranks[(m[:cut], m[cut + 1 :])] = i
    spell = bytes_to_unicode()
    return {"ids": {pre: encode_all(req["texts"], pre, tokens, types, vocab, ranks, spell) for pre in req["pres"]}, "tokens": tokens}


def encode_all(texts, pre, tokens, types, vocab, ranks, spell):
    regexes, ignore_merges = PRE[pre]
    patterns = [regex.compile(p) for p in regexes]

    def bpe(word):
        if ignore_merges and word in vocab:
            return [word]
        symbols = list(word)
        while len(symbols) > 1:
            rank, i = min((ranks.get((symbols[i], symbols[i + 1]), float("inf")), i) for i in range(len(symbols) - 1))
            if rank == float("inf"):
                break
            symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
        return symbols

    def encode(text):
        ids = []
        for part, special in special_split(text, tokens, types):
            if special:
                ids.append(vocab[part])
                continue
            pieces = [part]
            for p in patterns:
                pieces = split_isolated(pieces, p)
            for piece in pieces:
                ids += [vocab[s] for s in bpe("".join(spell[b] for b in piece.encode("utf-8")))]
        return ids

    return [encode(t) for t in texts]


def transformers_gguf(req):
    from gguf import GGUFReader
    from transformers import PreTrainedTokenizerFast
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer

    # transformers' GGUF reader imports torch; its get_gguf_tokenizer does just this with it.
    meta = {k: f.contents() for k, f in GGUFReader(req["gguf"]).fields.items() if k.startswith(("general.", "tokenizer."))}
    tokenizer_dict = {
        name: meta[f"tokenizer.{key}"] for key, name in GGUF_TOKENIZER_MAPPING["tokenizer"].items() if f"tokenizer.{key}" in meta
    }
    backend, _ = convert_gguf_tokenizer(meta["general.architecture"], tokenizer_dict)
    tokens = meta["tokenizer.ggml.tokens"]
    named = {
        name: tokens[meta[f"tokenizer.ggml.{key}"]]
        for name, key in [("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"), ("unk_token", "unknown_token_id"), ("pad_token", "padding_token_id")]
        if f"tokenizer.ggml.{key}" in meta
    }
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, chat_template=meta.get("tokenizer.chat_template"), **named)
    return {
        "ids": [tok.encode(t, add_special_tokens=False) for t in req["texts"]],
        "chats": [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in req["chats"]],
    }


def spm(req):
    import io
    import random

    import gguf
    import sentencepiece

    random.seed(0)
    words = "the quick brown fox jumps over lazy dog hello world llama mistral piece byte fallback 2024 3.14 café naïve 你好 世界".split()
    lines = [" ".join(random.choice(words) for _ in range(12)) for _ in range(3000)]
    model = io.BytesIO()
    # Llama 2's settings: no normalization, spaces kept, a dummy prefix, digits split, byte fallback.
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, model_type="bpe", vocab_size=400, byte_fallback=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True, split_digits=True,
        character_coverage=1.0, user_defined_symbols=["<tool>"], unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2,
    )
    sp = sentencepiece.SentencePieceProcessor(model_proto=model.getvalue())
    n = sp.get_piece_size()
    tokens = [sp.id_to_piece(i) for i in range(n)]

    def token_type(i):  # as llama.cpp's convert_hf_to_gguf.py classifies SentencePiece pieces
        if sp.is_unknown(i):
            return UNKNOWN
        if sp.is_control(i):
            return CONTROL
        if sp.is_unused(i):
            return 5
        if sp.is_byte(i):
            return 6
        return USER_DEFINED if tokens[i] == "<tool>" else 1

    types = [token_type(i) for i in range(n)]
    w = gguf.GGUFWriter(req["gguf"], "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([sp.get_score(i) for i in range(n)])
    w.add_token_types(types)
    w.add_bos_token_id(sp.bos_id())
    w.add_eos_token_id(sp.eos_id())
    w.add_unk_token_id(sp.unk_id())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    def encode(text):
        ids = []
        for part, special in special_split(text, tokens, types):
            ids += [sp.piece_to_id(part)] if special else sp.encode(part)
        return ids

    ids = [encode(t) for t in req["texts"]]
    return {"ids": ids, "decoded": [sp.decode(i) for i in ids]}


MODES = {"rust": rust, "llamacpp-bpe": llamacpp_bpe, "transformers": transformers_gguf, "spm": spm}

if __name__ == "__main__":
    with open(sys.argv[2], encoding="utf-8") as f:
        json.dump(MODES[sys.argv[1]](json.load(f)), sys.stdout, ensure_ascii=False)
