"""The files emgate ships beside its code, installed as the package `gateway.config`.

This folder holds data only: `factors/*.toml`, the factor library a site uses unless its
`[factors] library` names other files, and `examples/*.toml`, the documented site files (the demo
plant and the replays of the shared plant data). setup.py maps the folder to `gateway.config`, so
a wheel carries it, and gateway/settings/shipped.py finds these files with importlib.resources
wherever emgate is installed. In the repository they keep their paths, config/examples/... and
config/factors/..., which the documentation and the tests use.
"""
