"""Execution feedback: coding tasks, the sandbox that runs untrusted solutions, and the signals it yields."""
