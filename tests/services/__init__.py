"""Real peers for the integration tests: mosquitto, influxd, a modbus-tk slave and socat ptys.

Each service runs as a child process on free 127.0.0.1 ports, owns a temporary directory and
writes its output to the test log directory (see `process.log_dir`). Import the classes from
their modules (`tests.services.mosquitto`, ...); this package deliberately imports nothing so
that `python -m tests.services.modbus_tk_slave` starts cleanly.
"""
