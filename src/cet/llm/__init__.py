"""The LLM team: one interface for local and remote models, a model catalog, the team and the jury."""
