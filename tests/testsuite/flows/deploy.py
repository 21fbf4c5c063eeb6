"""A real deployment and flow run for tests/testsuite/worker.rs, made with Prefect's own Python API.

    python deploy.py POOL IMAGE

Deploys the flow below to the ECS work pool POOL with IMAGE (not built, not pushed: the
emulator never pulls it), starts one flow run of it without waiting, and prints one line of
JSON: {"deployment_id": ..., "flow_run_id": ...}. Run it with this directory as the working
directory (the deployment's entrypoint is relative to it) and PREFECT_API_URL set.
"""

import json
import sys

from prefect import flow
from prefect.deployments import run_deployment


@flow
def ecsctl_worker_test():
    print("a flow run the emulator never runs")


def main() -> None:
    pool, image = sys.argv[1], sys.argv[2]
    deployment_id = ecsctl_worker_test.deploy(
        # One deployment per pool: the server is shared by the whole test binary.
        name=f"{pool}-deployment",
        work_pool_name=pool,
        image=image,
        build=False,
        push=False,
        print_next_steps=False,
    )
    flow_run = run_deployment(deployment_id, timeout=0)
    print(json.dumps({"deployment_id": str(deployment_id), "flow_run_id": str(flow_run.id)}))


if __name__ == "__main__":
    main()
