"""The admin API is assembled from one small module per resource: every route has exactly one
handler, in one resource module, and the app itself adds the pipeline only."""

from __future__ import annotations

import inspect
from collections import Counter

from firmware.gateway.admin import app as app_mod
from firmware.gateway.admin.core import AdminCore
from firmware.gateway.admin.routes import ROUTES, Route

MAX_ROUTES = 8  # a resource is a handful of routes


def problems(app: type, routes: list[Route]) -> list[str]:
    """What is wrong with how APP's resource classes cover ROUTES."""
    out = []
    owners: dict[str, list[str]] = {}
    for base in app.__mro__:
        for name in vars(base):
            if name.startswith("h_"):
                owners.setdefault(name, []).append(base.__name__)
    wanted = {"h_" + r.handler for r in routes}
    for name in sorted(wanted - set(owners)):
        out.append("no handler %s" % name)
    for name in sorted(set(owners) - wanted):
        out.append("handler %s has no route" % name)
    for name, where in sorted(owners.items()):
        if len(where) > 1:
            out.append("%s defined in %s" % (name, ", ".join(where)))
        elif where == [app.__name__]:
            out.append("%s defined in the app, not in a resource" % name)
    per = Counter(owners[n][0] for n in wanted if n in owners)
    out += ["%s has %d routes" % (cls, n) for cls, n in sorted(per.items()) if n > MAX_ROUTES]
    return out


def test_every_route_has_one_handler_in_one_resource_module() -> None:
    assert problems(app_mod.AdminApp, ROUTES) == []
    resources = [b for b in app_mod.AdminApp.__bases__]
    assert len(resources) >= 6 and all(issubclass(b, AdminCore) for b in resources)
    for cls in resources:
        assert cls.__module__.startswith("firmware.gateway.admin.resources."), cls
        assert len(inspect.getsource(inspect.getmodule(cls))) < 8000, cls  # type: ignore[arg-type]


def test_the_coverage_check_can_fail() -> None:
    extra = Route("GET", "/api/nowhere", "status.read", "nowhere", "planted")
    assert problems(app_mod.AdminApp, ROUTES + [extra]) == ["no handler h_nowhere"]
    assert problems(app_mod.AdminApp, [r for r in ROUTES if r.handler != "status"]) == [
        "handler h_status has no route"]

    class Doubled(app_mod.AdminApp):
        def h_status(self, *a: object) -> None:  # type: ignore[override]
            """Shadows a resource's handler."""

    assert problems(Doubled, ROUTES) == ["h_status defined in Doubled, StatusRoutes"]
