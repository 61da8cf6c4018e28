"""The robot fleet simulator: robots played through the public robot API."""
