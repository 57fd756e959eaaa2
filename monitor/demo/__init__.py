"""`trailguard demo` and the seeded generator of CloudTrail activity behind it."""
