"""Operators and the delivery: questions shown as NEEDS_OPERATOR, and the decisions that answer them."""

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from core.contracts import CancelRequest, OperatorAction, OperatorDecision, OperatorRecord, ReasonCode
from workflows.delivery.state import Decision, DeliveryState
from workflows.delivery.visibility import Visibility

D = OperatorDecision
INVALID_ACTION = "invalid_operator_action"
PARTNER = "partner"  # who a partner's own cancel is requested by (`CancelRequest.requested_by`)
# What the partner is told of each decision that ends an attempt or the delivery.
TOLD_PARTNER = {D.CANCEL: ReasonCode.OPERATOR_CANCELLED, D.REDISPATCH: ReasonCode.OPERATOR_REDISPATCHED,
                D.RESOLVE_DELIVERED: ReasonCode.OPERATOR_DELIVERED, D.RESOLVE_RETURNED: ReasonCode.OPERATOR_RETURNED}
REASON_CODES = frozenset(code.value for code in ReasonCode)


def cancel_reason(requested_by: str, reason: str | None) -> str:
    """The reason a cancel tells the partner: the partner's own, or an operator's if it is a `ReasonCode`."""
    if reason and (requested_by == PARTNER or reason in REASON_CODES):
        return reason
    return ReasonCode.OPERATOR_CANCELLED.value


def told_partner(decision: Decision) -> str:
    """The reason code the partner is told of an operator's decision: set by its kind, never by its note."""
    if decision.kind is D.CANCEL:
        return cancel_reason(decision.action.operator, decision.action.reason)
    return TOLD_PARTNER[decision.kind].value


def cancel_action(request: CancelRequest, note: str) -> OperatorAction:
    """A cancel as an action on the operator's record, with the operator's own note if it gave one."""
    return OperatorAction(operator=request.requested_by, note=request.note or note, reason=request.reason)


class OperatorTookOver(Exception):
    """Unwinds the current attempt when an operator decided to cancel, resolve or redispatch it."""

    def __init__(self, decision: Decision):
        super().__init__(decision.kind.value)
        self.decision = decision


class Operator:
    def __init__(self, state: DeliveryState, visibility: Visibility):
        self.state, self.visibility = state, visibility

    async def park(self, reason: str, allowed: tuple[D, ...], cause: str) -> Decision:
        """Wait, visibly (DeliveryStatus=NEEDS_OPERATOR), for an operator's decision; return it.

        `cause` is a short, fixed label (the failing activity's name, no_robot, no_pilot) for the
        `deliveries_parked_total{reason}` metric; `reason` is the operator's full text. While another part of
        the delivery waits for an operator (the partner callbacks and a lifecycle step can park at once), this
        one waits its turn, so that each decision goes to the question the operator was shown.
        """
        state = self.state
        if state.attention is not None and not state.lid_question:
            await workflow.wait_condition(lambda: state.attention is None or state.lid_question)
        self.ask(reason, allowed, cause)
        await workflow.wait_condition(lambda: state.decision is not None)
        self.stop_asking()
        return self.take()

    def ask(self, reason: str, allowed: tuple[D, ...], cause: str) -> None:
        """Show the delivery as NEEDS_OPERATOR with `reason`, accepting the `allowed` decisions."""
        state = self.state
        if state.lid_question:  # a park (the partner callbacks') takes the place of the open-lid question
            state.lid_question, state.lid_withdrawn = False, True
        state.attention, state.allowed_decisions = reason, allowed
        self.visibility.count_park(cause)
        self.visibility.show()

    def stop_asking(self) -> None:
        self.state.attention, self.state.allowed_decisions = None, ()
        self.visibility.show()

    def check(self, kind: D, parked_only: bool = True) -> None:
        """Refuse a decision that cannot be taken now (the update's validator)."""
        state = self.state
        if state.decision is not None:
            raise ApplicationError("another operator decision is being carried out", type=INVALID_ACTION)
        if state.attention is None and parked_only:
            raise ApplicationError("the delivery is not waiting for an operator", type="not_parked")
        if state.attention is not None and kind not in state.allowed_decisions:
            choices = ", ".join(d.value for d in state.allowed_decisions)
            raise ApplicationError(f"{kind.value} does not apply here; choose one of {choices}", type=INVALID_ACTION)

    def decide(self, kind: D, action: OperatorAction) -> str:
        """Take the decision, recorded with who made it, when, and the question it answered."""
        state = self.state
        state.decision = Decision(kind, action)
        self.record(kind, action)
        return f"{kind.value} accepted from {action.operator}"

    def record(self, kind: D, action: OperatorAction) -> None:
        """Keep the decision, its note included, on the operator's record: operators read it (`ops show`, the
        `status` query); partners never do."""
        self.state.operator_actions.append(OperatorRecord(
            action=kind, operator=action.operator, note=action.note, robot_id=action.robot_id, reason=action.reason,
            at=workflow.now(), attention=self.state.attention))

    def unparked_decision(self) -> bool:
        """A decision made while something is parked belongs to whatever parked; others end the attempt."""
        return self.state.decision is not None and self.state.attention is None

    def take(self) -> Decision:
        decision, self.state.decision = self.state.decision, None
        return decision
