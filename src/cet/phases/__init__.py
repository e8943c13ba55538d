"""The training phases: each a short recipe over the parts (model, knowledge, llm, execution, data)."""
