"""One owner for every long-running task of the gateway (CPython, asyncio).

A supervised task that raises (or returns while the gateway still runs) is logged, raised as a
``task.failed`` alert and restarted with jittered exponential back-off. A task that keeps
failing (``DEGRADED_AFTER`` failures without a healthy stretch in between) marks the gateway
``degraded``: status and self-test show it and the systemd watchdog stops being fed, so systemd
restarts a gateway that cannot heal itself. Nothing ends silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from firmware.core.events import Event

log = logging.getLogger("mamori.supervisor")

TaskFactory = Callable[[], Awaitable[None]]
BACKOFF_FIRST_S = 0.5
BACKOFF_CAP_S = 60.0
HEALTHY_AFTER_S = 120.0  # a run this long without failing resets the failure count
DEGRADED_AFTER = 5


@dataclass
class Supervised:
    """A long-running task and what the supervisor knows about it."""

    name: str
    factory: TaskFactory
    state: str = "starting"  # running, backoff, stopped
    failures: int = 0  # consecutive, reset after HEALTHY_AFTER_S of running
    restarts: int = 0
    last_error: str = ""
    degraded: bool = False
    started_mono: float = 0.0
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def view(self) -> dict[str, Any]:
        """What status shows about this task."""
        return {"state": self.state, "failures": self.failures, "restarts": self.restarts,
                "last_error": self.last_error, "degraded": self.degraded}


class Supervisor:
    """Starts, restarts and stops supervised tasks; reports their health."""

    def __init__(self, emit: Callable[[Event], Any],
                 clock: Callable[[], float] = time.monotonic,
                 backoff_first: float = BACKOFF_FIRST_S, backoff_cap: float = BACKOFF_CAP_S,
                 degraded_after: int = DEGRADED_AFTER,
                 healthy_after: float = HEALTHY_AFTER_S) -> None:
        self.emit = emit
        self.clock = clock
        self.backoff_first = backoff_first
        self.backoff_cap = backoff_cap
        self.degraded_after = degraded_after
        self.healthy_after = healthy_after
        self.tasks: dict[str, Supervised] = {}
        self._stopping = False

    def spawn(self, name: str, factory: TaskFactory) -> asyncio.Task[None]:
        """Run factory() under supervision until stop() or the returned task is cancelled."""
        if name in self.tasks and self.tasks[name].state != "stopped":
            raise ValueError("a supervised task named %r already runs" % name)
        sup = Supervised(name, factory)
        self.tasks[name] = sup
        sup.task = asyncio.get_running_loop().create_task(self._keep(sup), name=name)
        return sup.task

    async def _keep(self, sup: Supervised) -> None:
        try:
            await self._run(sup)
        finally:
            sup.state = "stopped"

    async def _run(self, sup: Supervised) -> None:
        while not self._stopping:
            sup.state = "running"
            sup.started_mono = self.clock()
            try:
                await sup.factory()
                me = asyncio.current_task()
                if self._stopping or (me is not None and me.cancelling()):
                    # Stopping; or cancelled while the loop was finishing by itself (3.11's
                    # wait_for can swallow that cancellation): not a failure, do not restart.
                    break
                raise RuntimeError("the task returned while the gateway runs")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is reported and retried
                delay = self._failed(sup, exc)
            sup.state = "backoff"
            await asyncio.sleep(delay)
            sup.restarts += 1

    def _failed(self, sup: Supervised, exc: BaseException) -> float:
        if self.clock() - sup.started_mono >= self.healthy_after:
            sup.failures = 0
        sup.failures += 1
        sup.last_error = "%s: %s" % (type(exc).__name__, str(exc)[:200])
        log.error("supervised task %s failed (%d in a row)\n%s", sup.name, sup.failures,
                  "".join(traceback.format_exception(exc))[-4000:])
        self.emit(Event("task.failed", "alert", "gateway", action="supervise", target=sup.name,
                        result="restarting", reason=sup.last_error,
                        params={"failures": sup.failures, "restarts": sup.restarts}))
        if sup.failures >= self.degraded_after and not sup.degraded:
            sup.degraded = True
            self.emit(Event("gateway.degraded", "critical", "gateway", action="supervise",
                            target=sup.name, result="degraded",
                            reason="task %s failed %d times in a row: %s"
                                   % (sup.name, sup.failures, sup.last_error)))
        base = min(self.backoff_cap, self.backoff_first * 2 ** (sup.failures - 1))
        return float(base * (0.5 + random.random() / 2))

    def mark_healthy(self) -> None:
        """Clear the degraded marks of tasks that have run long enough since their last failure."""
        now = self.clock()
        for sup in self.tasks.values():
            if sup.degraded and sup.state == "running" and \
                    now - sup.started_mono >= self.healthy_after:
                sup.degraded = False
                sup.failures = 0
                self.emit(Event("gateway.recovered", "notice", "gateway", action="supervise",
                                target=sup.name, result="ok"))

    def healthy(self) -> bool:
        """True while no supervised task is degraded."""
        return not any(s.degraded for s in self.tasks.values())

    def status(self) -> dict[str, Any]:
        """Health and per-task state, for the status view."""
        return {"health": "ok" if self.healthy() else "degraded",
                "tasks": {n: s.view() for n, s in sorted(self.tasks.items())}}

    async def cancel(self, name: str) -> None:
        """Stop one supervised task (its service is stopping) and wait for it."""
        sup = self.tasks.get(name)
        if sup is None or sup.task is None:
            return
        sup.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sup.task
        sup.state = "stopped"

    def stopping(self) -> None:
        """The gateway is stopping: a loop that ends now is done, not failed (no restart)."""
        self._stopping = True

    async def stop(self) -> None:
        """Cancel every supervised task and wait for them."""
        self._stopping = True
        tasks = [s.task for s in self.tasks.values() if s.task is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for s in self.tasks.values():
            s.state = "stopped"
