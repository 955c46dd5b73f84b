"""The site file: its models (site, alerts), loading it into settings or into problems with key
paths and lines (load), and the factor library it resolves (factors)."""
