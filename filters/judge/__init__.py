"""The VIEScore judge over candidate rows, in three parts:

- `backends`: Qwen2.5-VL loaded in-process, or any OpenAI-compatible server (vLLM, GPT-4.1)
  through stages.models.openai_client, behind one small interface. Both see the same prompts
  (filters.viescore) with the images before the text: SC gets the source then the edited image,
  PQ the edited image alone.
- `policy`: the retry rule and what each row records. A reply that cannot be read is asked
  again once with a stricter prompt; if that fails too, the row is `unscored`. A refusal, an
  empty reply, a timeout or a server that keeps failing is `unscored` at once, with the reason:
  missing data, never a number. Rows that failed their gates are not judged (state `none`);
  without a judge (the cpu profile) every row says that ranking uses the gate score.
- `stage`: the judge as a pipeline stage, and the judge and stage the resolved config asks for.
- `pairwise` and `pairwise_stage`: best of N. The N targets of one edit (`tasks.<task>.seeds`)
  compared two at a time, in both orders, through the same backends; the most wins goes on."""
