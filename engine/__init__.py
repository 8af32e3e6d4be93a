"""The database stack deployed straight to Docker engines, without Pulumi: the local stack's
"see it work" path (`./run up --stack local`) and the multi-node Swarm suite (tests/swarm).

It deploys the same Swarm objects the DatabaseStack component declares, from the one translation
in `dpc.swarm_spec`, through the Docker Engine API that pulumi-docker itself calls.
"""
