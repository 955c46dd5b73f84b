"""Real peers for the integration tests: mosquitto, influxd, a modbus-tk slave and socat ptys.

Each is a `process.ServiceProcess`: a child process on free 127.0.0.1 ports that owns a
temporary directory and writes its output to the test log directory (see `process.log_dir`); a
peer's module gives only its command line and readiness check. Import the classes from their
modules (`tests.services.mosquitto`, ...); this package deliberately imports nothing so that
`python -m tests.services.modbus_tk_slave` starts cleanly.
"""
