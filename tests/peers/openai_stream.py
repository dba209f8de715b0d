"""OpenAI peer for tests/protocol_openai.rs: the real `openai` client streaming a chat completion.

  openai_stream.py BASE_URL
      1. a streamed completion with usage (stream_options.include_usage), read through the
         client's own SSE parser, each chunk timed on arrival;
      2. the same without usage, read as raw lines (what the client's HTTP layer received);
      prints both as JSON.
"""
import json
import sys
import time

from openai import OpenAI


def main(base_url):
    client = OpenAI(base_url=base_url, api_key="test-key", max_retries=0, timeout=30)
    messages = [{"role": "user", "content": "say hello"}]

    start = time.monotonic()
    parsed, usage = [], None
    stream = client.chat.completions.create(
        model="tiny-llm", messages=messages, stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        t = time.monotonic() - start
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
        for choice in chunk.choices:
            parsed.append({"t": t, "content": choice.delta.content,
                           "finish_reason": choice.finish_reason})

    start = time.monotonic()
    raw = []
    with client.chat.completions.with_streaming_response.create(
        model="tiny-llm", messages=messages, stream=True,
    ) as response:
        for line in response.iter_lines():
            raw.append({"t": time.monotonic() - start, "line": line})

    print(json.dumps({"parsed": parsed, "usage": usage, "raw": raw}))


if __name__ == "__main__":
    main(sys.argv[1])
