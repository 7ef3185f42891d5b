#!/usr/bin/env python3
"""Writes the workflows of scripts/bench-scaling.sh into a directory: `chain-K.json`, start ->
K llm nodes one after another (each asking about the previous answer) -> end, and `loop.json`,
start -> a loop over `tasks` with one llm node inside -> end. The llm nodes call `{{MOCK_LLM}}`."""
import json
import sys


def llm(node_id, prompt_ref, x):
    return {
        "id": node_id, "type": "llm", "meta": {"position": {"x": x, "y": 0}},
        "data": {
            "title": node_id,
            "inputsValues": {
                "modelName": {"type": "constant", "content": "mock-model"},
                "apiKey": {"type": "constant", "content": "sk-mock"},
                "apiHost": {"type": "constant", "content": "{{MOCK_LLM}}"},
                "temperature": {"type": "constant", "content": 0.5},
                "systemPrompt": {"type": "constant", "content": "You are a helpful AI assistant."},
                "prompt": {"type": "ref", "content": prompt_ref},
            },
            "inputs": {"type": "object", "required": ["modelName", "temperature", "prompt"],
                       "properties": {k: {"type": t} for k, t in [
                           ("modelName", "string"), ("apiKey", "string"), ("apiHost", "string"),
                           ("temperature", "number"), ("systemPrompt", "string"), ("prompt", "string")]}},
            "outputs": {"type": "object", "properties": {"result": {"type": "string"}}},
        },
    }


def start(prop, schema):
    return {"id": "start_0", "type": "start", "meta": {"position": {"x": 0, "y": 0}},
            "data": {"title": "Start", "outputs": {"type": "object", "properties": {prop: schema},
                                                     "required": [prop]}}}


def end(ref, schema, x):
    return {"id": "end_0", "type": "end", "meta": {"position": {"x": x, "y": 0}},
            "data": {"title": "End", "inputsValues": {"answer": {"type": "ref", "content": ref}},
                     "inputs": {"type": "object", "properties": {"answer": schema}}}}


def chain(k):
    nodes = [start("prompt", {"type": "string"})]
    previous = ["start_0", "prompt"]
    for i in range(k):
        nodes.append(llm(f"llm_{i}", previous, 300 * (i + 1)))
        previous = [f"llm_{i}", "result"]
    nodes.append(end(previous, {"type": "string"}, 300 * (k + 1)))
    ids = [n["id"] for n in nodes]
    return {"nodes": nodes, "edges": [{"sourceNodeID": a, "targetNodeID": b} for a, b in zip(ids, ids[1:])]}


def loop():
    body = llm("llm_0", ["loop_0_locals", "item"], 200)
    node = {
        "id": "loop_0", "type": "loop", "meta": {"position": {"x": 300, "y": 0}},
        "data": {"title": "Loop", "loopFor": {"type": "ref", "content": ["start_0", "tasks"]},
                 "loopOutputs": {"results": {"type": "ref", "content": ["llm_0", "result"]}}},
        "blocks": [
            {"id": "block_start_0", "type": "block-start", "meta": {"position": {"x": 0, "y": 0}}, "data": {}},
            body,
            {"id": "block_end_0", "type": "block-end", "meta": {"position": {"x": 400, "y": 0}}, "data": {}},
        ],
        "edges": [{"sourceNodeID": "block_start_0", "targetNodeID": "llm_0"},
                  {"sourceNodeID": "llm_0", "targetNodeID": "block_end_0"}],
    }
    nodes = [start("tasks", {"type": "array", "items": {"type": "string"}}), node,
             end(["loop_0", "results"], {"type": "array", "items": {"type": "string"}}, 900)]
    return {"nodes": nodes, "edges": [{"sourceNodeID": "start_0", "targetNodeID": "loop_0"},
                                      {"sourceNodeID": "loop_0", "targetNodeID": "end_0"}]}


if __name__ == "__main__":
    out = sys.argv[1]
    for k in (1, 10, 100):
        with open(f"{out}/chain-{k}.json", "w") as f:
            json.dump(chain(k), f)
    with open(f"{out}/loop.json", "w") as f:
        json.dump(loop(), f)
