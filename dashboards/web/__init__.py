"""The facility web dashboard: live rooms, history, alerts, sensors, the access register and users.

``build_app(config, hub=..., db_path=...)`` makes the ASGI app; ``serve(app, config, address=...)`` runs it
with uvicorn; ``one_time_admin(UserStore(db))`` gives the demo its one-time administrator password.
"""

from dashboards.web.app import build_app
from dashboards.web.server import WebServer, parse_address, serve
from dashboards.web.users import UserStore, one_time_admin

__all__ = ["UserStore", "WebServer", "build_app", "one_time_admin", "parse_address", "serve"]
