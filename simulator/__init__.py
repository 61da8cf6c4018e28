"""The robot fleet simulator: robots played through the public robot API, in the demo market seeded for them."""
