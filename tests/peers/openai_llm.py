"""OpenAI client against a real LLM server (llama.cpp) for tests/llm_llamacpp.rs: the official
`openai` client as an application uses it, measuring each request on the client side.

  openai_llm.py run BASE_URL STREAMS PLAIN MAX_TOKENS
      STREAMS streamed and PLAIN plain chat completions, temperature 0, alternating prompts;
      each stream asks for usage (stream_options.include_usage) as a careful client would.
      Prints one JSON object per request: stream, ttft (s, first non-empty content, None for
      plain), e2e (s), chunks (content chunks received), finish_reason, usage (dict or None),
      text (the answer's content as the client assembled it).
  openai_llm.py requests BASE_URL SPEC
      The requests SPEC (a JSON list of {"prompt", "max_tokens", "stream"}) in order, each
      measured as in `run`, plus tpot (s per token after the first: (last content chunk -
      first) / (chunks - 1), None under two chunks).
  openai_llm.py abort BASE_URL READ MAX_TOKENS
      One stream that the client closes after READ content chunks (a user pressing stop).
      Prints {"chunks": READ, "ttft": s}.
"""
import json
import sys
import time

from openai import OpenAI

PROMPTS = [
    "Name three colours.",
    "Count from one to five.",
    "What is the capital of France?",
    "Say hello in Spanish.",
]


def client(base_url):
    return OpenAI(base_url=base_url, api_key="test-key", max_retries=0, timeout=120)


def streamed(c, prompt, max_tokens):
    start = time.monotonic()
    ttft, last, chunks, finish, usage, text = None, None, 0, None, None, ""
    stream = c.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": prompt}], stream=True,
        temperature=0, max_tokens=max_tokens, stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
        for choice in chunk.choices:
            if choice.delta.content:
                text += choice.delta.content
                chunks += 1
                last = time.monotonic() - start
                if ttft is None:
                    ttft = last
            if choice.finish_reason is not None:
                finish = choice.finish_reason
    tpot = (last - ttft) / (chunks - 1) if chunks >= 2 else None
    return {"stream": True, "ttft": ttft, "tpot": tpot, "e2e": time.monotonic() - start,
            "chunks": chunks, "finish_reason": finish, "usage": usage, "text": text}


def plain(c, prompt, max_tokens):
    start = time.monotonic()
    r = c.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": prompt}],
        temperature=0, max_tokens=max_tokens,
    )
    return {"stream": False, "ttft": None, "tpot": None, "e2e": time.monotonic() - start,
            "chunks": 0,
            "finish_reason": r.choices[0].finish_reason,
            "usage": r.usage.model_dump() if r.usage else None,
            "text": r.choices[0].message.content or ""}


def run(base_url, streams, plains, max_tokens):
    c = client(base_url)
    out = []
    for i in range(streams):
        out.append(streamed(c, PROMPTS[i % len(PROMPTS)], max_tokens))
    for i in range(plains):
        out.append(plain(c, PROMPTS[i % len(PROMPTS)], max_tokens))
    print(json.dumps(out))


def requests(base_url, spec):
    c = client(base_url)
    out = []
    for r in json.loads(spec):
        send = streamed if r["stream"] else plain
        out.append(send(c, r["prompt"], r["max_tokens"]))
    print(json.dumps(out))


def abort(base_url, read, max_tokens):
    c = client(base_url)
    start = time.monotonic()
    ttft, chunks = None, 0
    stream = c.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Tell me a long story about a dragon."}],
        stream=True, temperature=0, max_tokens=max_tokens,
    )
    for chunk in stream:
        if any(ch.delta.content for ch in chunk.choices):
            chunks += 1
            if ttft is None:
                ttft = time.monotonic() - start
            if chunks == read:
                break
    # Closing an unfinished response closes its connection: the server sees the client go.
    stream.close()
    print(json.dumps({"chunks": chunks, "ttft": ttft}))


if __name__ == "__main__":
    mode, base = sys.argv[1], sys.argv[2]
    if mode == "run":
        run(base, int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif mode == "requests":
        requests(base, sys.argv[3])
    elif mode == "abort":
        abort(base, int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(f"unknown mode {mode}")
