"""Operators and the delivery: questions shown as NEEDS_OPERATOR, and the decisions that answer them."""

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from core.contracts import OperatorAction, OperatorDecision, OperatorRecord
from workflows.delivery.state import Decision, DeliveryState
from workflows.delivery.visibility import Visibility

D = OperatorDecision
INVALID_ACTION = "invalid_operator_action"


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
        state.operator_actions.append(OperatorRecord(
            action=kind, operator=action.operator, note=action.note, robot_id=action.robot_id, reason=action.reason,
            at=workflow.now(), attention=state.attention))
        return f"{kind.value} accepted from {action.operator}"

    def unparked_decision(self) -> bool:
        """A decision made while something is parked belongs to whatever parked; others end the attempt."""
        return self.state.decision is not None and self.state.attention is None

    def take(self) -> Decision:
        decision, self.state.decision = self.state.decision, None
        return decision
