"""The local AWS emulator (moto's server) with one fix, run from the emulator's virtualenv:

    ~/.cache/ecsctl/venv/bin/python scripts/moto_server.py --host 127.0.0.1 --port 0

moto 5.2.5 answers RunTask with HTTP 500 (`TypeError: unsupported operand type(s) for +=: 'int'
and 'NoneType'` in `_calculate_task_resource_requirements`) when a container definition has no
container-level memory. AWS accepts that for Fargate, where the task's memory is what counts, and
it is exactly what prefect-aws registers for a flow run. So a container without memory counts as
0 MiB here; everything else is moto's own code. tests/testsuite/harness_selftest.rs proves the
fix is needed (moto alone answers 500) and works (through this file the task is created).
"""

import sys
import types

from moto.ecs.models import EC2ContainerServiceBackend
from moto.server import main

_MEMORY_KEYS = ("Memory", "MemoryReservation", "memory", "memoryReservation")
_original = EC2ContainerServiceBackend._calculate_task_resource_requirements


def _has_memory(container):
    return any(container.get(key) is not None for key in _MEMORY_KEYS)


def _calculate_task_resource_requirements(task_definition):
    containers = task_definition.container_definitions
    if all(_has_memory(c) for c in containers):
        return _original(task_definition)
    # moto reads only the container definitions; hand it copies where a memory-less container
    # says 0 MiB, and leave the task definition itself as registered.
    view = types.SimpleNamespace(
        container_definitions=[
            c if _has_memory(c) else {**c, "memory": 0} for c in containers
        ]
    )
    return _original(view)


EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(
    _calculate_task_resource_requirements
)

if __name__ == "__main__":
    sys.argv[0] = "moto_server"
    sys.exit(main())
