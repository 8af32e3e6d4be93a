"""Per-cloud builders, and the one composition that wires them together for every cloud."""
