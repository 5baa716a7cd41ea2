"""``archmon demo``: the whole program against built-in simulators, with a month of history and a script.

See ``docs/demo.md``. Modules: ``site`` (configuration, sensors, models), ``rooms`` (the models of
time), ``history`` (the past month), ``judge`` (the history judged by the real engine in simulated time),
``scenario`` (the live part's scripted events), ``terminal`` (what the terminal shows), ``run`` (the
command).
"""

from dashboards.demo.run import run_demo
from dashboards.demo.site import demo_config

__all__ = ["demo_config", "run_demo"]
