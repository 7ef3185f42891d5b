"""The official `openai` package against /v1/chat/completions, blocking and streaming.

Run by tests/api/service/openai_client.rs with LLMOPS_BASE_URL, LLMOPS_APP_KEY and
LLMOPS_EXPECTED (the mock's answer); prints one JSON line with what it saw."""
import json
import os

import openai

client = openai.OpenAI(base_url=os.environ["LLMOPS_BASE_URL"], api_key=os.environ["LLMOPS_APP_KEY"])
messages = [{"role": "user", "content": "hello from the openai package"}]

completion = client.chat.completions.create(model="any", messages=messages)
streamed = []
final_usage = None
finish = None
for chunk in client.chat.completions.create(model="any", messages=messages, stream=True,
                                             stream_options={"include_usage": True}):
    if chunk.choices:
        if chunk.choices[0].delta.content:
            streamed.append(chunk.choices[0].delta.content)
        finish = chunk.choices[0].finish_reason or finish
    if chunk.usage is not None:
        final_usage = chunk.usage.total_tokens

models = client.models.list()
error = None
try:
    openai.OpenAI(base_url=os.environ["LLMOPS_BASE_URL"], api_key="app-wrong").chat.completions.create(
        model="any", messages=messages)
except openai.AuthenticationError as e:
    error = e.status_code

print(json.dumps({
    "content": completion.choices[0].message.content,
    "usage_total": completion.usage.total_tokens,
    "usage_prompt": completion.usage.prompt_tokens,
    "streamed": "".join(streamed),
    "stream_finish": finish,
    "stream_usage_total": final_usage,
    "models": [m.id for m in models.data],
    "wrong_key_status": error,
}))
