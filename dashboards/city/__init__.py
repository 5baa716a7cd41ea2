"""Many sites, one city (DESIGN.md section 4): each site publishes its alerts and health to the city's broker
(:class:`SitePublisher`), a central archmon collects them (:class:`CityState`, :class:`CitySubscriber`) and
shows the city overview with series from the central InfluxDB (:mod:`dashboards.city.series`, the page
``/city``)."""

from dashboards.city.publisher import SitePublisher
from dashboards.city.state import CityState, SiteView
from dashboards.city.subscriber import CitySubscriber
from dashboards.city.topics import alert_topic, site_topic, status_topic

__all__ = ["CityState", "CitySubscriber", "SitePublisher", "SiteView", "alert_topic", "site_topic", "status_topic"]
