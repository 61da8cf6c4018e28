"""Code the tests share: harnesses, drivers, stubs and helpers. Test modules import from here, never each other."""
