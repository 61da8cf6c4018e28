"""The Dispatch planner as pure code: assignment quality, battery feasibility, rectangular shapes, quotes' view."""

import numpy as np
import pytest

from services.dispatch.eta import BATTERY_PER_METER, PICKUP_DWELL
from services.dispatch.planner import (
    PLANNERS, Demands, Fleet, PickupProblem, PlanningRules, after_backlog, assignment_solver, meters_matrix, solve_batch,
    solve_greedy,
)

ORIGIN = np.array([34.0900, -118.3617])
DEGREE_METERS = 111_195
RULES = PlanningRules(speed_mps=1.4, battery_reserve=0.2)


def north(meters: float) -> np.ndarray:
    return ORIGIN + [meters / DEGREE_METERS, 0]


def random_instance(rng: np.random.Generator, demands: int, robots: int, battery=(1.0, 1.0)) -> tuple[Demands, Fleet]:
    def points(count: int) -> np.ndarray:
        return ORIGIN + rng.uniform(-0.01, 0.01, (count, 2))

    fleet = Fleet(points(robots), rng.uniform(0, 600, robots), rng.uniform(*battery, robots))
    return Demands(points(demands), points(demands)), fleet


def test_eta_matrix_is_travel_from_where_and_when_each_robot_is_free():
    demands = Demands(np.array([ORIGIN]), np.array([north(700)]))
    fleet = Fleet(np.array([north(140), north(-280)]), np.array([0.0, 60.0]), np.array([1.0, 1.0]))

    problem = PickupProblem.build(demands, fleet, RULES)

    assert problem.eta[0] == pytest.approx([100, 60 + 200], rel=1e-3)
    assert problem.delivery[0] == pytest.approx(700, rel=1e-3)
    assert meters_matrix(np.array([ORIGIN]), np.array([north(1000)]))[0, 0] == pytest.approx(1000, rel=1e-3)


@pytest.mark.parametrize("demands, robots", [(30, 50), (50, 30), (40, 40)])
def test_batch_total_never_exceeds_greedy_total(demands, robots):
    rng = np.random.default_rng(demands * robots)
    for _ in range(20):
        problem = PickupProblem.build(*random_instance(rng, demands, robots), RULES)
        batch, greedy = solve_batch(problem), solve_greedy(problem)
        assert len(batch[0]) == len(greedy[0]) == min(demands, robots)
        assert problem.eta[batch].sum() <= problem.eta[greedy].sum() + 1e-6


def test_batch_beats_first_come_when_the_oldest_demand_takes_the_shared_robot():
    # The oldest demand's nearest robot is also the only near one for the second demand.
    demands = Demands(np.array([ORIGIN, north(1000)]), np.array([north(100), north(1100)]))
    fleet = Fleet(np.array([north(400), north(-700)]), np.zeros(2), np.ones(2))
    problem = PickupProblem.build(demands, fleet, RULES)

    assert solve_greedy(problem)[1].tolist() == [0, 1]
    assert solve_batch(problem)[1].tolist() == [1, 0]
    assert problem.eta[solve_batch(problem)].sum() < problem.eta[solve_greedy(problem)].sum()


@pytest.mark.parametrize("planner", sorted(PLANNERS))
def test_a_robot_that_cannot_finish_the_trip_and_get_back_to_the_depot_is_never_assigned(planner):
    depot = north(-2000)
    rules = PlanningRules(speed_mps=1.4, battery_reserve=0.2, depot=(depot[0], depot[1]))
    demands = Demands(np.array([ORIGIN, north(50)]), np.array([north(500), north(550)]))
    # 100 m + 500 m + 2500 m back to the depot uses 6.2%: the near robot has 5% to spare, the far one plenty.
    fleet = Fleet(np.array([north(-100), north(-3000)]), np.zeros(2), np.array([0.25, 1.0]))

    problem = PickupProblem.build(demands, fleet, rules)
    rows, cols = PLANNERS[planner].solve(problem)

    assert not problem.feasible[:, 0].any() and problem.feasible[:, 1].all()
    assert cols.tolist() == [1] and len(rows) == 1
    used = (problem.to_pickup[0, 0] + 500 + 2500) * BATTERY_PER_METER
    assert 0.25 - used < 0.2 < 1.0 - used


@pytest.mark.parametrize("planner", sorted(PLANNERS))
def test_excluded_pairs_are_never_assigned(planner):
    rng = np.random.default_rng(3)
    demands, fleet = random_instance(rng, 10, 10)
    excluded = np.eye(10, dtype=bool)

    problem = PickupProblem.build(demands, fleet, RULES, excluded)
    rows, cols = PLANNERS[planner].solve(problem)

    assert len(rows) == 10 and not excluded[rows, cols].any()


@pytest.mark.parametrize("planner", sorted(PLANNERS))
@pytest.mark.parametrize("demands, robots", [(5, 40), (40, 5)])
def test_rectangular_both_ways_one_demand_per_robot(planner, demands, robots):
    problem = PickupProblem.build(*random_instance(np.random.default_rng(11), demands, robots), RULES)

    rows, cols = PLANNERS[planner].solve(problem)

    assert len(rows) == min(demands, robots)
    assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)


def test_greedy_serves_the_oldest_demands_first_when_robots_are_few():
    demands = Demands(np.array([north(3000), ORIGIN, north(10)]), np.array([north(3100), north(100), north(110)]))
    fleet = Fleet(np.array([north(5)]), np.zeros(1), np.ones(1))
    problem = PickupProblem.build(demands, fleet, RULES)

    assert solve_greedy(problem)[0].tolist() == [0]
    assert solve_batch(problem)[0].tolist() in ([1], [2])


def test_nothing_feasible_assigns_nothing():
    demands, fleet = random_instance(np.random.default_rng(5), 4, 3, battery=(0.0, 0.1))
    problem = PickupProblem.build(demands, fleet, RULES)

    for planner in PLANNERS.values():
        assert [len(part) for part in planner.solve(problem)] == [0, 0]
    assert problem.earliest(0) is None


def test_runners_up_are_the_next_feasible_robots_by_pickup_eta():
    demands = Demands(np.array([ORIGIN]), np.array([north(100)]))
    fleet = Fleet(np.array([north(300), north(100), north(900), north(50)]), np.zeros(4), np.array([1, 1, 1, 0.1]))
    problem = PickupProblem.build(demands, fleet, RULES)

    assert problem.earliest(0) == 1
    assert [robot for robot, _ in problem.runners_up(0, 1)] == [0, 2]


def test_a_queued_demand_moves_where_when_and_with_what_charge_a_robot_is_free():
    fleet = Fleet(np.array([ORIGIN, ORIGIN]), np.array([0.0, 100.0]), np.array([1.0, 1.0]))
    queued = Demands(np.array([north(140)]), np.array([north(840)]))

    after = fleet.after(np.array([1]), queued, speed_mps=1.4)

    assert after.positions[1] == pytest.approx(north(840))
    assert after.free_in[1] == pytest.approx(100 + 100 + PICKUP_DWELL.total_seconds() + 500, rel=1e-3)
    assert after.battery[1] == pytest.approx(1 - 840 * BATTERY_PER_METER, rel=1e-3)
    assert (after.free_in[0], fleet.free_in[1]) == (0.0, 100.0)


def test_with_fewer_robots_the_demand_that_waited_longest_goes_first():
    # Two demands, one robot: the nearer one is newer. Without waits the nearer wins; with them the older does.
    fleet = Fleet(np.array([ORIGIN]), np.array([0.0]), np.array([1.0]))
    pickups, dropoffs = np.array([north(300), north(100)]), np.array([north(600), north(400)])
    fresh = PickupProblem.build(Demands(pickups, dropoffs), fleet, RULES)
    aged = PickupProblem.build(Demands(pickups, dropoffs, waited=np.array([600.0, 0.0])), fleet, RULES)

    assert list(solve_batch(fresh)[0]) == [1]
    assert list(solve_batch(aged)[0]) == [0]
    # With a robot for each, waits change nothing: the same least-total assignment.
    two = Fleet(np.array([ORIGIN, north(500)]), np.array([0.0, 0.0]), np.array([1.0, 1.0]))
    plain = solve_batch(PickupProblem.build(Demands(pickups, dropoffs), two, RULES))
    waited = solve_batch(PickupProblem.build(Demands(pickups, dropoffs, np.array([600.0, 0.0])), two, RULES))
    assert [list(a) for a in plain] == [list(a) for a in waited]


def test_the_backlog_queues_a_new_demand_behind_the_waiting_ones():
    fleet = Fleet(np.array([ORIGIN]), np.array([0.0]), np.array([1.0]))
    waiting = Demands(np.array([north(140)]), np.array([north(840)]))
    after = after_backlog(fleet, waiting, RULES)

    # The robot walks 140 m, dwells, walks 700 m: then it is free, at that dropoff.
    assert after.free_in[0] == pytest.approx((140 + 700) / 1.4 + PICKUP_DWELL.total_seconds(), rel=1e-3)
    assert np.allclose(after.positions[0], north(840))
    assert after.battery[0] == pytest.approx(1.0 - 840 * BATTERY_PER_METER, rel=1e-3)


def test_the_assignment_solver_is_scipys_without_importing_scipy_optimize():
    """The solver is loaded alone (scipy.optimize is ~50 MB resident) and answers as the public function does."""
    import subprocess
    import sys

    probe = ("import sys; from services.dispatch.planner import assignment_solver; solve = assignment_solver(); "
             "print(solve.__module__, 'scipy.optimize' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["scipy.optimize._lsap", "False"]

    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(7)
    for shape in [(6, 9), (9, 6), (25, 25)]:
        cost = rng.uniform(0, 100, shape)
        ours, public = assignment_solver()(cost), linear_sum_assignment(cost)
        assert all(np.array_equal(a, b) for a, b in zip(ours, public))
