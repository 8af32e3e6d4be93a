"""AWS: the builders of every component, composed by `providers.common.composition`."""

from dpc.render.backup import S3Repository
from providers.aws.budget import build_budget
from providers.aws.compute import build_compute
from providers.aws.load_balancer import build_load_balancer
from providers.aws.network import build_network
from providers.aws.provider import aws_provider
from providers.aws.registry import build_image_list, build_registry
from providers.aws.storage import build_storage
from providers.aws.swarm import build_swarm
from providers.common.composition import CloudBuilders

AWS = CloudBuilders(
    provider=aws_provider,
    network=build_network,
    storage=build_storage,
    swarm=build_swarm,
    compute=build_compute,
    load_balancer=build_load_balancer,
    budget=build_budget,
    registry=build_registry,
    image_list=build_image_list,
    offsite_repository=lambda settings, bucket: S3Repository(bucket=bucket, region=settings.region),
)
