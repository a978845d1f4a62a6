"""What operators use: listing and deleting entries, health probes, Prometheus metrics, system checks."""
