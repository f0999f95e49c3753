"""Drive a program under the mocks to its end, failing with its error instead of hanging.

Pulumi's runtime, once a program has run (or raised), waits for every outstanding
registration and every output before it reports anything. A registration that waits on an
output nothing will resolve any more (a ``pulumi.deferred_output`` the program stopped
before resolving, as the models bucket's policy waits on the distribution's ARN) keeps it
waiting forever, with the program's error held back. Here the event loop is watched: when
nothing has moved for a while and no mock call is under way, the run is deadlocked, and
the program's error (or the first failed registration's) is raised with the registrations
left waiting named.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from pulumi.runtime import resource as runtime_resource
from pulumi.runtime import settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

T = TypeVar("T")

STALL_SECONDS = 5.0
"""How long the loop must stand still, with no mock call under way, to count as deadlocked
(seen twice in a row): a deadlock never ends, so a longer wait only delays the failure, while
a loaded CI machine can leave a thread unscheduled for a second or two."""


class Activity(Protocol):
    """The monitor's count of the calls it has started and finished, and of those under way."""

    calls: int
    busy: int


_COUNTED = ("RegisterResource", "RegisterResourceOutputs", "Invoke", "ReadResource")
_counting = threading.Lock()


def counting_calls(cls: type[T]) -> type[T]:
    """Count a mock monitor's calls (``Activity``): they run on threads, and a slow one must
    not be taken for a deadlock."""

    def counted(method: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        @functools.wraps(method)
        def call(self: Any, request: Any) -> Any:
            with _counting:
                self.calls, self.busy = self.calls + 1, self.busy + 1
            try:
                return method(self, request)
            finally:
                with _counting:
                    self.calls, self.busy = self.calls + 1, self.busy - 1

        return call

    for name in _COUNTED:
        setattr(cls, name, counted(getattr(cls, name)))
    cls.calls = cls.busy = 0  # type: ignore[attr-defined]
    return cls


def run_program(main: Callable[[], None], monitor: Activity) -> None:
    """Run ``main`` as the Pulumi runtime runs a program, and wait for what it registered."""
    failure: list[BaseException] = []

    def program() -> None:
        try:
            main()
        except BaseException as error:
            failure.append(error)
            raise

    _sync_await(_until_settled(program, monitor, failure))


async def _until_settled(
    program: Callable[[], None], monitor: Activity, failure: list[BaseException]
) -> None:
    runner = asyncio.ensure_future(run_pulumi_func(program))
    previous: tuple[Any, ...] | None = None
    while True:
        done, _ = await asyncio.wait({runner}, timeout=STALL_SECONDS)
        if done:
            return runner.result()
        now = (_positions(), monitor.calls)
        if now == previous and not monitor.busy:
            error = _deadlock_error(failure, _waiting_registrations())
            await _cancel_all()
            raise error
        previous = now


def _positions() -> frozenset[tuple[int, int]]:
    """Every pending task with what it waits on: unchanged while nothing moves."""
    current = asyncio.current_task()
    return frozenset(
        (id(task), id(getattr(task, "_fut_waiter", None)))
        for task in asyncio.all_tasks()
        if task is not current
    )


_REGISTRATION = "register_resource.<locals>.do_register"


def _waiting_registrations() -> list[str]:
    """The resources whose registration is still waiting on an input."""
    found = []
    for task in asyncio.all_tasks():
        coro: Any = task.get_coro()
        frame = getattr(coro, "cr_frame", None)
        if frame is not None and coro.__qualname__.endswith(
            "register_resource.<locals>.do_register"
        ):
            found.append(f"{frame.f_locals.get('ty')} {frame.f_locals.get('name')!r}")
    return sorted(found)


def _deadlock_error(failure: list[BaseException], waiting: list[str]) -> BaseException:
    error = failure[0] if failure else settings.SETTINGS.rpc_manager.unhandled_exception
    names = ", ".join(waiting) or "(none)"
    if error is None:
        return RuntimeError(
            "the program ended, but these registrations wait on outputs nothing resolves "
            f"(a deferred output left unresolved?): {names}"
        )
    error.add_note(f"The program stopped while these registrations waited on it: {names}")
    return error


async def _cancel_all() -> None:
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def forget_failed_run() -> None:
    """A failed run leaves its other registrations and outputs behind, with its error: the
    next run would wait on them and fail with it (pulumi.runtime.test clears them too)."""
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    # The failed run's resource futures hold its error, already raised by that run: asyncio
    # would log each of them again, hundreds of tracebacks, when they are collected.
    asyncio.get_event_loop().set_exception_handler(_unless_already_raised)


def _unless_already_raised(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    if not str(context.get("message", "")).endswith("exception was never retrieved"):
        loop.default_exception_handler(context)


_prepare_resource = runtime_resource.prepare_resource


async def _prepare_naming_the_resource(res: Any, ty: str, *args: Any, **kwargs: Any) -> Any:
    """The runtime's ``prepare_resource``, which awaits a resource's inputs: an error raised
    by an ``apply`` computing one of them gets a note naming the resource."""
    try:
        return await _prepare_resource(res, ty, *args, **kwargs)
    except Exception as error:
        if not any(n.startswith(_NOTE) for n in getattr(error, "__notes__", ())):
            error.add_note(f"{_NOTE} {ty} {getattr(res, '_name', '?')!r}")
        raise


_NOTE = "Raised while computing the inputs of"
runtime_resource.prepare_resource = _prepare_naming_the_resource
