"""Drives the official Python SDK (PyPI `dify-client`) through the gateway with a tenant JWT.

Usage: python3 python_sdk.py http://127.0.0.1:8080/v1 <tenant JWT>
Checks a blocking and a streaming completion, a feedback, the parameters and a file upload.
"""
import io
import json
import sys

from dify_client import CompletionClient

base, token = sys.argv[1], sys.argv[2]
client = CompletionClient(token)
client.base_url = base  # 0.1.10 has no constructor argument for it
user = "sdk-python"

r = client.create_completion_message(inputs={"topic": "green tea"}, response_mode="blocking", user=user)
r.raise_for_status()
blocking = r.json()
assert blocking["event"] == "message" and blocking["answer"], blocking
print("blocking completion:", blocking["answer"][:40], "...")

r = client.create_completion_message(inputs={"topic": "oolong"}, response_mode="streaming", user=user)
r.raise_for_status()
events = [json.loads(line[6:]) for line in r.iter_lines(decode_unicode=True) if line and line.startswith("data: ")]
assert events[-1]["event"] == "message_end", events[-1]
print("streaming completion:", len(events), "events, usage", events[-1]["metadata"]["usage"]["total_tokens"], "tokens")

r = client.message_feedback(blocking["message_id"], "like", user)
r.raise_for_status()
assert r.json() == {"result": "success"}, r.text
print("feedback:", r.json())

r = client.get_application_parameters(user)
r.raise_for_status()
assert "user_input_form" in r.json()
print("parameters:", [list(f)[0] for f in r.json()["user_input_form"]])

r = client.file_upload(user, {"file": ("leaf.png", io.BytesIO(b"\x89PNG" + b"0" * 1024), "image/png")})
r.raise_for_status()
assert r.status_code == 201 and r.json()["name"] == "leaf.png", r.text
print("file upload:", r.status_code, r.json()["id"])
print("python SDK: all calls succeeded")
