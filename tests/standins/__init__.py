"""Stand-ins for parts that cannot exist on a test machine (labelled as such; tests only)."""
