"""Phase 1 knowledge base: source readers -> chunking -> embedding -> stores -> hybrid retrieval."""
