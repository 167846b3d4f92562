"""A tiny random-weight llama model in GGUF, made on the spot: a real llama.cpp server can load and serve it.

2 layers, 64 dims, 4 heads, f32. Its answers are noise, but every part of the server (loading, context size,
chat template, streaming, limits) is real. Two vocabularies:

- ``bytes`` (the tests' default): 256 byte tokens + <unk>, <s>, </s>; about 470 KB. One token per byte, so
  token counts are easy to reason about.
- ``words`` (the demo): the bytes plus up to 8,192 word pieces taken from this package's own source text
  (English docstrings and code), with every prefix of each so llama.cpp's SentencePiece-style merges can reach
  them; about 4.7 MB. It packs about 3-4 bytes of English into a token, so opencode's long system prompt
  costs a third of the tokens, and attention (quadratic in the prompt) about a tenth of the time.

Needs the ``gguf`` package (the ``[demo]`` extra); numpy comes with it.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

N_LAYERS = 2
N_EMBD = 64
N_HEADS = 4
N_FF = 128
N_CTX_TRAIN = 32768  # what the model says it was trained for (meta.n_ctx_train); llama.cpp serves no more
SPECIALS = ("<unk>", "<s>", "</s>")
MAX_PIECES = 8192  # word pieces of the ``words`` vocabulary
SPACE = "\u2581"  # SentencePiece's visible space: llama.cpp's tokenizer writes " word" as "▁word"
CHAT_TEMPLATE = (  # ChatML: llama.cpp renders chat requests with it
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def word_pieces(limit: int = MAX_PIECES) -> list[str]:
    """The most frequent words (and punctuation runs) of this package's source, each with and without a leading
    space, plus every prefix of each: llama.cpp builds a word by merging adjacent pieces, so each step must be a
    piece too. Printable ASCII characters come first, so no text falls back to bytes but the rare."""
    root = Path(__file__).resolve().parent.parent
    counts: Counter[str] = Counter()
    for source in sorted(root.rglob("*.py")):
        text = source.read_text(encoding="utf-8", errors="replace")
        counts.update(m.group(0).replace(" ", SPACE) for m in re.finditer(r" ?(?:[A-Za-z]+|[^\sA-Za-z0-9]{1,3})", text))
    pieces = dict.fromkeys([chr(c) for c in range(33, 127)] + [SPACE, "\n", "\n\n", SPACE * 2, SPACE * 4])
    for word, _ in counts.most_common():
        if len(pieces) >= limit:
            break
        pieces.update(dict.fromkeys(word[:n] for n in range(1, len(word) + 1)))
    return list(pieces)[:limit]


def write_tiny_llama(path: Path, *, n_ctx_train: int = N_CTX_TRAIN, seed: int = 0, name: str = "tiny-llama",
                     vocabulary: str = "bytes") -> Path:
    """Write the model to ``path`` (deterministic for a given seed and package source) and return ``path``."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)

    def weights(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    tokens = [s.encode() for s in SPECIALS] + [f"<0x{b:02X}>".encode() for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256
    scores = [0.0] * len(tokens)
    if vocabulary == "words":
        pieces = word_pieces()
        tokens += [p.encode() for p in pieces]
        types += [gguf.TokenType.NORMAL] * len(pieces)
        scores += [float(len(p)) for p in pieces]  # longer pieces merge first
    elif vocabulary != "bytes":
        raise ValueError(f"vocabulary {vocabulary!r}: give 'bytes' or 'words'")
    n_vocab = len(tokens)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(n_ctx_train)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYERS)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEADS)
    writer.add_head_count_kv(N_HEADS)
    writer.add_rope_dimension_count(N_EMBD // N_HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_chat_template(CHAT_TEMPLATE)

    # numpy shapes are (rows, cols); GGUF stores them reversed, as llama.cpp expects ({n_embd, n_vocab}, ...).
    writer.add_tensor("token_embd.weight", weights(n_vocab, N_EMBD))
    for i in range(N_LAYERS):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        for part in ("q", "k", "v", "output"):
            writer.add_tensor(f"blk.{i}.attn_{part}.weight", weights(N_EMBD, N_EMBD))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", weights(N_FF, N_EMBD))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", weights(N_FF, N_EMBD))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", weights(N_EMBD, N_FF))
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    writer.add_tensor("output.weight", weights(n_vocab, N_EMBD))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
