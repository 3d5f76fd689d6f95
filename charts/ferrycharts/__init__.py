"""Dev-only generators for the Helm chart: dashboards, alert rules and the plain-YAML install.

Run ``make dashboards`` / ``make install-manifests``; tests under tests/chart fail when the
committed copies differ from what these modules produce.
"""
