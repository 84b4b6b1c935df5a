"""The bundled trainer: streams shards and trains the verifier."""
