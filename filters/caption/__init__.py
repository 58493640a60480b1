"""The captioner: after the gates, an MLLM looks at each passing candidate (the source, the
target, a local edit's mask) and its edit's metadata and writes the instructions in English and
Chinese in two registers, plus one-line captions of both pictures. It sits beside the judge
because it too looks at the finished pair, and it asks through the judge's backends (Qwen2.5-VL
in this process, or an OpenAI-compatible server with bounded concurrency, timeouts, retries).

- `terms`: what the edit's metadata says must appear in every instruction (the object, the
  colour or material, the new words), and how a term is found in each language.
- `prompt`: the question, and the stricter one for the single retry.
- `reply`: a reply checked: JSON shape, each field in its language, length bounds, key terms,
  no refusal.
- `stage`: the stage, and the stage the resolved config's `captioner:` block asks for. A row
  whose replies fail twice (or whose request fails) keeps its template instruction, and
  provenance says why; the cpu profile keeps templates on every row and says so."""
