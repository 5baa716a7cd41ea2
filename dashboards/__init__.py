"""What people see: the web dashboard, Grafana boards and compliance reports."""
