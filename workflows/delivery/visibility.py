"""What operators see of a delivery: search attributes, current details, metrics and log context."""

NEEDS_OPERATOR = "NEEDS_OPERATOR"
