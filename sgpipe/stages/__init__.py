"""Pipeline stages: each fills fields of `Sample` records and knows nothing of Ray."""
