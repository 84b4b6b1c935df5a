"""Quality measurements of pipeline components against public reference data."""
