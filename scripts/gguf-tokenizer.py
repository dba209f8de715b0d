"""Write a Hugging Face tokenizer directory (tokenizer.json + tokenizer_config.json) from the
tokenizer a GGUF model file carries, offline: LLM load generators (aiperf, GuideLLM) want a HF
tokenizer to build synthetic prompts of a given token length and to count output tokens, and
here there is no hub to fetch one from.

  gguf-tokenizer.py MODEL.gguf OUT_DIR

Only GGUF's byte-level BPE ("gpt2" tokenizer model: SmolLM2, Qwen, GPT-2 and kin) is handled;
anything else is refused with its name. transformers' own GGUF import needs PyTorch, which the
load generator's venv does not otherwise need, so the tokenizer is rebuilt from the file's
vocabulary, merges and special tokens with the `tokenizers` library.
"""
import json
import os
import sys

# transformers warns on import that PyTorch is absent; only its tokenizer classes are used here.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import gguf  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

# GGUF token types (llama.cpp's llama_token_type): 3 = control, 4 = user-defined.
CONTROL, USER_DEFINED = 3, 4


def field(reader, key, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def main(model_path, out_dir):
    r = gguf.GGUFReader(model_path)
    kind = field(r, "tokenizer.ggml.model")
    if kind != "gpt2":
        sys.exit(f"gguf-tokenizer: {model_path}: tokenizer model {kind!r} is not byte-level BPE (gpt2)")
    tokens = field(r, "tokenizer.ggml.tokens")
    types = field(r, "tokenizer.ggml.token_type") or [1] * len(tokens)
    merges = [tuple(m.split(" ", 1)) for m in field(r, "tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(tokens)}

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    # GPT-2's split, with each digit its own piece as SmolLM2's tokenizer (llama.cpp's "smollm"
    # pre-tokenizer) splits them.
    split_digits = field(r, "tokenizer.ggml.pre") in ("smollm", "qwen2", "deepseek-llm")
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if split_digits:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(r"\d"), behavior="isolated"), byte_level]
        )
    else:
        tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()

    special = [t for t, ty in zip(tokens, types) if ty in (CONTROL, USER_DEFINED)]
    name = lambda key: tokens[int(field(r, key))] if field(r, key) is not None else None
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=name("tokenizer.ggml.bos_token_id"),
        eos_token=name("tokenizer.ggml.eos_token_id"),
        unk_token=name("tokenizer.ggml.unknown_token_id"),
        pad_token=name("tokenizer.ggml.padding_token_id"),
        additional_special_tokens=special,
        clean_up_tokenization_spaces=False,
    )
    template = field(r, "tokenizer.chat_template")
    if template:
        fast.chat_template = template
    os.makedirs(out_dir, exist_ok=True)
    fast.save_pretrained(out_dir)
    # A record of where it came from, for whoever opens the directory.
    with open(os.path.join(out_dir, "SOURCE.json"), "w") as f:
        json.dump({"gguf": os.path.basename(model_path), "tokens": len(tokens)}, f)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
