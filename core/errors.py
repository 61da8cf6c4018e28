"""Business failures: typed, non-retryable, and handled by the workflow instead of retried."""

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

NO_ROBOT_AVAILABLE = "NoRobotAvailable"
NO_PILOT_AVAILABLE = "NoPilotAvailable"
ROBOT_NOT_DEPLOYED = "RobotNotDeployed"
ROBOT_UNAVAILABLE = "RobotUnavailable"
UNKNOWN_ORDER = "UnknownOrder"
PARTNER_ENDPOINT_GONE = "PartnerEndpointGone"
NO_CAPACITY = "NoCapacity"

BUSINESS_ERRORS = frozenset({
    NO_ROBOT_AVAILABLE, NO_PILOT_AVAILABLE, ROBOT_NOT_DEPLOYED, ROBOT_UNAVAILABLE, UNKNOWN_ORDER,
    PARTNER_ENDPOINT_GONE, NO_CAPACITY,
})
# Answers a delivery waits on and asks again, not faults: the worker logs them at DEBUG, without a traceback,
# and they count as no failure in the SDK's metrics.
EXPECTED_ANSWERS = frozenset({NO_ROBOT_AVAILABLE, NO_PILOT_AVAILABLE, NO_CAPACITY})


def business_error(error_type: str, message: str, *details: object) -> ApplicationError:
    """A failure that retrying cannot fix; the workflow decides what happens next (with `details`, if any)."""
    assert error_type in BUSINESS_ERRORS, error_type
    category = ApplicationErrorCategory.UNSPECIFIED
    if error_type in EXPECTED_ANSWERS:
        category = ApplicationErrorCategory.BENIGN
    return ApplicationError(message, *details, type=error_type, non_retryable=True, category=category)
